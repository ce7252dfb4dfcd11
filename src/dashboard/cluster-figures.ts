import type { NodeView } from '../cluster/roster.ts';
import { api } from './api.ts';
import { $, cell, count, nameCell, rate, tenantLabel } from './dom.ts';

/**
 * Every node's figures in one view, and each tenant's summed over the nodes, from `GET /v1/nodes`
 * (this node's figures fresh, the others' from their last heartbeat). Polled every two seconds
 * while the page is visible: the stream carries this node's figures only, and the others' change
 * once per heartbeat anyway. Rates are the difference between two answers over the time between
 * the heartbeats they came from, so a node heard every 5 s has a rate over 5 s.
 */

const POLL_MS = 2_000;
const TENANT_ROWS = 200;

interface NodesAnswer {
  readonly nodes: readonly NodeView[];
  readonly heartbeatMs: number;
  readonly leaseMs: number;
}

interface Sample {
  /** When the figures were taken (the node's `seenAt`), ms. */
  readonly at: number;
  readonly published: number;
  readonly delivered: number;
  readonly rates: { readonly published: number; readonly delivered: number } | undefined;
}

/** The previous sample of each node, for its rates. */
const samples = new Map<string, Sample>();
let timer: ReturnType<typeof setTimeout> | undefined;
/** Bumped by each (re)start: a poll of an earlier one neither shows its answer nor goes on. */
let generation = 0;
let selfFeedLagMs: number | undefined;

/** Starts polling (again, at once: a new credential). */
export function watchCluster(): void {
  clearTimeout(timer);
  samples.clear();
  void poll(++generation);
}

/** This node's feed lag, from its stats notices (the heartbeats do not carry one). */
export function setSelfFeedLag(ms: number): void {
  selfFeedLagMs = ms;
}

async function poll(mine: number): Promise<void> {
  try {
    // A hidden tab asks nothing: the figures are for someone looking.
    if (!document.hidden) await refresh(mine);
  } finally {
    if (mine === generation) timer = setTimeout(() => poll(mine), POLL_MS);
  }
}

async function refresh(mine: number): Promise<void> {
  const answer = await api<NodesAnswer>('v1/nodes');
  if (mine !== generation) return;
  const status = $('#nodes-status');
  status.dataset.status = String(answer.status);
  status.textContent = answer.ok ? '' : answer.problem;
  status.classList.toggle('bad', !answer.ok);
  if (!answer.ok || answer.body === undefined) return;
  const { nodes, leaseMs } = answer.body;
  showNodes(nodes, leaseMs);
  showTenants(nodes);
}

function sampleOf(node: NodeView): Sample {
  // The node's own totals: its tenants' figures are capped to the busiest ones.
  const { published, delivered } = node;
  const at = Date.parse(node.seenAt);
  const previous = samples.get(node.id);
  let rates = previous?.rates;
  if (previous === undefined || published < previous.published || delivered < previous.delivered) {
    // First seen, or restarted under the same id: no rate yet.
    rates = undefined;
  } else if (at > previous.at) {
    const seconds = (at - previous.at) / 1000;
    rates = {
      published: (published - previous.published) / seconds,
      delivered: (delivered - previous.delivered) / seconds,
    };
  } else {
    // No newer heartbeat since the last answer: the same figures, the same rate.
    return previous;
  }
  const sample = { at, published, delivered, rates };
  samples.set(node.id, sample);
  return sample;
}

function showNodes(nodes: NodesAnswer['nodes'], leaseMs: number): void {
  // Ages against the answering node's clock (its own `seenAt` is its now), not the browser's.
  const now = Date.parse(nodes.find((node) => node.self)?.seenAt ?? new Date().toISOString());
  const totals = { connections: 0, published: 0, delivered: 0, rates: { published: 0, delivered: 0 } };
  const rows = nodes.map((node) => {
    const sample = sampleOf(node);
    totals.connections += node.connections;
    totals.published += sample.published;
    totals.delivered += sample.delivered;
    totals.rates.published += sample.rates?.published ?? 0;
    totals.rates.delivered += sample.rates?.delivered ?? 0;
    const state = node.degraded ?? 'ready';
    const lag = node.self ? selfFeedLagMs : node.feedLagMs;
    const age = Math.max(0, now - Date.parse(node.seenAt));
    const row = document.createElement('tr');
    Object.assign(row.dataset, {
      node: node.id,
      state,
      connections: String(node.connections),
      published: String(sample.published),
      delivered: String(sample.delivered),
      self: String(node.self),
      ratePublished: String(sample.rates?.published ?? ''),
      rateDelivered: String(sample.rates?.delivered ?? ''),
    });
    const name = nameCell(node.self ? `${node.id} (this node)` : node.id);
    const stateCell = cell(state, state === 'ready' ? 'ok' : 'bad');
    stateCell.title = state === 'ready' ? 'running as configured' : `not running as configured: ${state}`;
    const heard = cell(
      node.self ? 'now' : `${(age / 1000).toFixed(1)} s ago`,
      age > leaseMs / 2 ? 'bad' : '',
    );
    heard.title = `${node.seenAt}; started ${node.startedAt}`;
    row.append(
      name,
      stateCell,
      cell(count(node.connections), 'number'),
      cell(sample.rates === undefined ? '–' : rate(sample.rates.published), 'number'),
      cell(sample.rates === undefined ? '–' : rate(sample.rates.delivered), 'number'),
      cell(lag === undefined ? '–' : `${lag} ms`, 'number'),
      heard,
    );
    return row;
  });
  $('#nodes tbody').replaceChildren(...rows);
  const total = $('#nodes-count');
  total.textContent = String(nodes.length);
  total.dataset.total = String(nodes.length);
  const foot = $<HTMLTableRowElement>('#nodes-total');
  Object.assign(foot.dataset, {
    connections: String(totals.connections),
    published: String(totals.published),
    delivered: String(totals.delivered),
    ratePublished: String(totals.rates.published),
    rateDelivered: String(totals.rates.delivered),
  });
  foot.replaceChildren(
    cell(`cluster (${nodes.length})`),
    cell(''),
    cell(count(totals.connections), 'number'),
    cell(rate(totals.rates.published), 'number'),
    cell(rate(totals.rates.delivered), 'number'),
    cell(''),
    cell(`${count(totals.published)} / ${count(totals.delivered)} in all`),
  );
}

/** Each tenant's streams and events, summed over the nodes (a heartbeat carries its 1 000 busiest tenants). */
function showTenants(nodes: NodesAnswer['nodes']): void {
  const tenants = new Map<string, { streams: number; published: number; delivered: number }>();
  for (const node of nodes) {
    for (const [tenant, figures] of Object.entries(node.tenants)) {
      const sum = tenants.get(tenant) ?? { streams: 0, published: 0, delivered: 0 };
      sum.streams += figures.streams;
      sum.published += figures.published;
      sum.delivered += figures.delivered;
      tenants.set(tenant, sum);
    }
  }
  const rows = [...tenants]
    .sort(
      (a, b) => b[1].streams - a[1].streams || b[1].published - a[1].published || a[0].localeCompare(b[0]),
    )
    .slice(0, TENANT_ROWS)
    .map(([tenant, figures]) => {
      const row = document.createElement('tr');
      Object.assign(row.dataset, {
        tenant,
        streams: String(figures.streams),
        published: String(figures.published),
        delivered: String(figures.delivered),
      });
      row.append(
        nameCell(tenantLabel(tenant)),
        cell(count(figures.streams), 'number'),
        cell(count(figures.published), 'number'),
        cell(count(figures.delivered), 'number'),
      );
      return row;
    });
  $('#tenants tbody').replaceChildren(...rows);
}
