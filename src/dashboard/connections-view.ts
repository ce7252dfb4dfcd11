import type { ConnectionRow } from '../cluster/connections.ts';
import { api } from './api.ts';
import { $, bytes, cell, inputText, nameCell, report, tenantLabel } from './dom.ts';

/**
 * The open streams of every node (`GET /v1/connections`), filtered by tenant, subject and topic,
 * and the actions on them (`POST /v1/connections/disconnect`): one stream by its row, or every
 * stream of the filter's subject or tenant, with a reason the client is told and whether it may
 * come back. Every action is confirmed first. The list is refreshed every five seconds while the
 * page is visible, and after each action.
 */

const REFRESH_MS = 5_000;
const ROWS = 200;

interface ConnectionsAnswer {
  readonly connections: readonly ConnectionRow[];
  readonly truncated: boolean;
  readonly nodes: readonly string[];
  readonly incomplete: readonly string[];
}

interface DisconnectAnswer {
  readonly disconnected: number;
  readonly nodes: readonly string[];
  readonly incomplete: readonly string[];
}

let timer: ReturnType<typeof setTimeout> | undefined;
/** The newest list asked for: an older answer arriving after it (another filter) is dropped. */
let requested = 0;
let inFlight = 0;

/** Wires the card's forms and buttons. */
export function setUpConnections(): void {
  $('#conn-filter').addEventListener('submit', (event) => {
    event.preventDefault();
    void listNow();
  });
  $('#connections tbody').addEventListener('click', (event) => {
    const button = (event.target as Element).closest<HTMLButtonElement>('button[data-id]');
    if (button === null) return;
    const { id = '', node = '' } = button.dataset;
    void disconnect({ id }, `End connection ${id} on ${node}?`);
  });
  $('#disconnect-subject').addEventListener('click', () => {
    const subject = inputText('#conn-subject');
    const tenant = inputText('#conn-tenant');
    if (subject === '') return report('#conn-result', 400, 'give a subject in the filter first');
    void disconnect(
      { subject, ...(tenant ? { tenant } : {}) },
      `End every stream of subject "${subject}"${tenant ? ` in tenant "${tenant}"` : ' in every tenant'}, on every node?`,
    );
  });
  $('#disconnect-tenant').addEventListener('click', () => {
    const tenant = inputText('#conn-tenant');
    if (tenant === '') return report('#conn-result', 400, 'give a tenant in the filter first');
    void disconnect(
      { tenant },
      tenant === '*'
        ? 'End EVERY stream of every tenant, on every node (this page included)?'
        : `End every stream of tenant "${tenant}", on every node?`,
    );
  });
}

/** Lists now, then every five seconds. */
export function watchConnections(): void {
  void listNow();
}

/** Lists now (a filter, an action, a new credential), then again in five seconds. */
async function listNow(): Promise<void> {
  clearTimeout(timer);
  await list();
  schedule();
}

function schedule(): void {
  clearTimeout(timer);
  timer = setTimeout(() => {
    // A hidden tab, or a list still on its way (a slow node), skips a turn.
    if (document.hidden || inFlight > 0) schedule();
    else void list().finally(schedule);
  }, REFRESH_MS);
}

async function list(): Promise<void> {
  const asked = ++requested;
  inFlight++;
  try {
    await show(asked);
  } finally {
    inFlight--;
  }
}

async function show(asked: number): Promise<void> {
  const answer = await api<ConnectionsAnswer>('v1/connections', {
    tenant: inputText('#conn-tenant') || undefined,
    subject: inputText('#conn-subject') || undefined,
    topic: inputText('#conn-topic') || undefined,
    limit: String(ROWS),
  });
  if (asked !== requested) return;
  const summary = $('#conn-summary');
  if (!answer.ok || answer.body === undefined) {
    summary.dataset.status = String(answer.status);
    summary.textContent = answer.problem;
    summary.classList.add('bad');
    return;
  }
  const { connections, truncated, nodes, incomplete } = answer.body;
  summary.dataset.status = String(answer.status);
  summary.dataset.count = String(connections.length);
  summary.classList.toggle('bad', incomplete.length > 0);
  summary.textContent =
    `${connections.length}${truncated ? `+ (the first ${ROWS})` : ''} from ${nodes.length} node${nodes.length === 1 ? '' : 's'}` +
    (incomplete.length > 0 ? `; no answer in time from ${incomplete.join(', ')}` : '');
  $('#connections tbody').replaceChildren(...connections.map(row));
}

function row(connection: ConnectionRow): HTMLTableRowElement {
  const tr = document.createElement('tr');
  Object.assign(tr.dataset, {
    id: connection.id,
    node: connection.node,
    tenant: connection.tenant,
    subject: connection.subject ?? '',
  });
  const id = cell(connection.id.length > 12 ? `${connection.id.slice(0, 12)}…` : connection.id, 'id');
  id.title = connection.id;
  const opened = cell(connection.openedAt.slice(11, 19));
  opened.title = connection.openedAt;
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = 'Disconnect';
  button.className = 'danger';
  Object.assign(button.dataset, { id: connection.id, node: connection.node });
  const action = document.createElement('td');
  action.append(button);
  tr.append(
    id,
    nameCell(connection.node),
    nameCell(tenantLabel(connection.tenant)),
    nameCell(connection.subject ?? '–'),
    nameCell(connection.topics.join(' ')),
    opened,
    cell(connection.transport),
    cell(bytes(connection.bytes), 'number'),
    cell(String(connection.queued), 'number'),
    action,
  );
  return tr;
}

async function disconnect(
  target: { id?: string; subject?: string; tenant?: string },
  question: string,
): Promise<void> {
  const reason = inputText('#disconnect-reason');
  const reconnect = $<HTMLInputElement>('#disconnect-reconnect').checked;
  if (
    !confirm(
      `${question}\n\nReason: ${reason || '(none)'}\n${reconnect ? 'They may reconnect.' : 'They may NOT reconnect with the same credential.'}`,
    )
  ) {
    return;
  }
  const answer = await api<DisconnectAnswer>(
    'v1/connections/disconnect',
    {},
    { ...target, reason, reconnect },
  );
  if (!answer.ok || answer.body === undefined) {
    report('#conn-result', answer.status, answer.problem);
  } else {
    const { disconnected, incomplete } = answer.body;
    report(
      '#conn-result',
      answer.status,
      `ended ${disconnected} stream${disconnected === 1 ? '' : 's'}` +
        (incomplete.length > 0 ? `; no answer in time from ${incomplete.join(', ')}: retry` : ''),
    );
    $('#conn-result').dataset.disconnected = String(disconnected);
  }
  await listNow();
}
