import { createClient, type HeraldClient, type HeraldMessage } from '../client/index.ts';
import { STATS_EVENT, STATS_TOPIC } from '../core/protocol/system-events.ts';
import { authorization, root, setToken } from './api.ts';
import { setSelfFeedLag, watchCluster } from './cluster-figures.ts';
import { setUpConnections, watchConnections } from './connections-view.ts';
import { $, bytes, cell, duration, fillList, nameCell } from './dom.ts';
import { setUpHistory } from './history-view.ts';
import { setUpPresence } from './presence-view.ts';
import type { DashboardStats } from './stats-feed.ts';

/**
 * The dashboard page: one `herald/client` stream of tenant `*` carries both this node's figures
 * (notices on `herald/stats`, once a second, no id) and the live tail (the log's events matching
 * the tail's selector). The cluster's cards ask the admin API: every node's figures
 * (cluster-figures.ts), connections and their actions (connections-view.ts), presence and
 * history. Bundled by scripts/build-dashboard.mjs.
 */

const TOKEN_KEY = 'herald-dashboard-token';
const CHART_POINTS = 60;
const TAIL_ROWS = 100;
const TOPIC_ROWS = 50;

/** `#token=…` once (then forgotten from the address bar), else what was pasted in this tab. */
function initialToken(): string {
  const fragment = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fragment) {
    sessionStorage.setItem(TOKEN_KEY, fragment);
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

let token = initialToken();
let client: HeraldClient | undefined;
let tailSelector = '*';
const published: number[] = [];
const delivered: number[] = [];

function connect(): void {
  client?.close();
  setToken(token);
  watchCluster();
  watchConnections();
  const next = createClient({
    url: root,
    topics: [STATS_TOPIC, tailSelector],
    tenant: '*',
    ...(token ? { token } : {}),
    // A dashboard opened later should show what happens then, not replay where an earlier one stopped.
    store: null,
  });
  next.onStatus(({ status, reason }) => showStatus(status, reason));
  next.on(STATS_EVENT, (message) => showStats(message.data as DashboardStats));
  next.on('*', addToTail);
  client = next;
}

function showStatus(status: string, reason?: string): void {
  const element = $('#status');
  element.dataset.status = status;
  element.textContent = reason ? `${status}: ${reason}` : status;
}

// ---- figures --------------------------------------------------------------------------------

function showStats(stats: DashboardStats): void {
  $('#status').dataset.node = stats.node;
  setSelfFeedLag(stats.feed.lagMs);
  const total = $('#connections-total');
  total.dataset.total = String(stats.connections.total);
  total.title = `${stats.watchers} of them watch these figures`;
  total.textContent = String(stats.connections.total);
  fillCounts('#by-tenant', 'tenant', stats.connections.byTenant, (name) =>
    name === '' ? '(default)' : name,
  );
  fillCounts('#by-topic', 'topic', stats.connections.byTopic, (name) => name);

  const { history, feed, health } = stats;
  fillList('#broker', [
    ['kind', stats.broker],
    ['health', health.ok ? 'ok' : `down: ${health.detail ?? 'unreachable'}`, health.ok ? 'ok' : 'bad'],
    ...(stats.degraded ? [['degraded', stats.degraded, 'bad'] as const] : []),
    ['node', stats.node],
    ['uptime', duration(stats.uptimeMs)],
    ['feed lag', `${feed.lagMs} ms`],
    ['history', history ? `${history.size} / ${history.maxSize} events` : '–'],
    ['newest id', history?.newestId ?? '–'],
  ]);
  $('#broker').dataset.health = health.ok ? 'ok' : 'down';

  const { events, outbox } = stats;
  fillList('#slow', [
    ['disconnected (overflow)', String(events.closed.overflow), events.closed.overflow > 0 ? 'bad' : ''],
    ['events dropped', String(events.droppedEvents), events.droppedEvents > 0 ? 'bad' : ''],
    ['gaps reported', String(events.gaps)],
    ['queued now', `${outbox.queuedEvents} events, ${bytes(outbox.queuedBytes)}`],
    [
      'closed: idle / lifetime / expired',
      `${events.closed.idle} / ${events.closed.lifetime} / ${events.closed.expired}`,
    ],
    ['published / delivered (total)', `${events.published} / ${events.delivered}`],
  ]);
  Object.assign($('#slow').dataset, {
    overflow: String(events.closed.overflow),
    published: String(events.published),
    delivered: String(events.delivered),
  });

  push(published, stats.rates.published);
  push(delivered, stats.rates.delivered);
  $('#rate-published').textContent = String(stats.rates.published);
  $('#rate-delivered').textContent = String(stats.rates.delivered);
  drawChart();
}

function fillCounts(
  table: string,
  attribute: string,
  counts: Record<string, number>,
  label: (name: string) => string,
): void {
  const rows = Object.entries(counts)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, TOPIC_ROWS)
    .map(([name, count]) => {
      const row = document.createElement('tr');
      row.dataset[attribute] = name;
      row.dataset.count = String(count);
      row.append(nameCell(label(name)), cell(String(count)));
      return row;
    });
  $(`${table} tbody`).replaceChildren(...rows);
}

function push(series: number[], value: number): void {
  series.push(value);
  if (series.length > CHART_POINTS) series.shift();
}

function drawChart(): void {
  const chart = $<SVGSVGElement>('#chart');
  const max = Math.max(1, ...published, ...delivered);
  // The newest sample at the right edge, older ones scrolling left.
  const points = (series: readonly number[]) =>
    series
      .map((value, i) => {
        const x = ((CHART_POINTS - series.length + i) * 600) / (CHART_POINTS - 1);
        return `${x.toFixed(1)},${(160 - (value / max) * 150).toFixed(1)}`;
      })
      .join(' ');
  $('#chart-max').textContent = `${max}/s`;
  chart.querySelector('polyline.published')?.setAttribute('points', points(published));
  chart.querySelector('polyline.delivered')?.setAttribute('points', points(delivered));
  chart.dataset.samples = String(published.length);
  chart.dataset.max = String(max);
  chart.dataset.published = published.join(',');
  chart.dataset.delivered = delivered.join(',');
}

// ---- live tail ------------------------------------------------------------------------------

function addToTail(message: HeraldMessage): void {
  const row = document.createElement('tr');
  row.dataset.id = message.id;
  row.dataset.type = message.type;
  row.append(
    cell(new Date().toISOString().slice(11, 23)),
    cell(message.id),
    cell(message.type),
    cell(message.raw.length > 200 ? `${message.raw.slice(0, 200)}…` : message.raw),
  );
  row.hidden = !matchesType(message.type);
  const body = $('#tail tbody');
  body.prepend(row);
  while (body.children.length > TAIL_ROWS) body.lastElementChild?.remove();
}

function matchesType(type: string): boolean {
  const wanted = $<HTMLInputElement>('#tail-type').value.trim();
  return wanted === '' || type === wanted;
}

/** The type filter is applied here; the topic is a selector of the stream, changed in place. */
async function applyTailFilter(): Promise<void> {
  for (const row of $('#tail tbody').querySelectorAll<HTMLTableRowElement>('tr')) {
    row.hidden = !matchesType(row.dataset.type ?? '');
  }
  const selector = $<HTMLInputElement>('#tail-topic').value.trim() || '*';
  if (selector === tailSelector || selector === STATS_TOPIC || client === undefined) return;
  const previous = tailSelector;
  tailSelector = selector;
  try {
    await client.subscribe(selector);
    await client.unsubscribe(previous);
    $('#tail tbody').replaceChildren();
  } catch (error) {
    tailSelector = previous;
    showStatus('open', `filter refused: ${error instanceof Error ? error.message : String(error)}`);
  }
}

// ---- publish form ---------------------------------------------------------------------------

async function publishTestEvent(): Promise<void> {
  const output = $('#publish-result');
  const text = $<HTMLTextAreaElement>('#publish-data').value;
  let data: unknown = text;
  try {
    data = JSON.parse(text);
  } catch {
    // Not JSON: published as a string.
  }
  const type = $<HTMLInputElement>('#publish-type').value.trim();
  const tenant = $<HTMLInputElement>('#publish-tenant').value.trim();
  const event = {
    topic: $<HTMLInputElement>('#publish-topic').value.trim(),
    data,
    ...(type ? { type } : {}),
    ...(tenant ? { tenant } : {}),
  };
  const response = await fetch(`${root}v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...authorization() },
    body: JSON.stringify(event),
  });
  const body = (await response.json()) as { id?: string; detail?: string };
  output.dataset.status = String(response.status);
  output.textContent = response.ok ? `published ${body.id}` : `${response.status}: ${body.detail}`;
}

// ---- wiring ---------------------------------------------------------------------------------

$('#auth').addEventListener('submit', (event) => {
  event.preventDefault();
  token = $<HTMLInputElement>('#token').value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  connect();
});
$('#tail-filter').addEventListener('submit', (event) => {
  event.preventDefault();
  void applyTailFilter();
});
$('#publish').addEventListener('submit', (event) => {
  event.preventDefault();
  publishTestEvent().catch((error: unknown) => {
    $('#publish-result').textContent = `failed: ${error instanceof Error ? error.message : String(error)}`;
  });
});
setUpConnections();
setUpPresence();
setUpHistory();
connect();
