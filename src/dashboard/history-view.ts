import type { HistoryPage } from '../core/history-browse.ts';
import { api } from './api.ts';
import { $, cell, inputText, nameCell, report, tenantLabel } from './dom.ts';

/**
 * A topic's history, newest first (`GET /v1/history`): a page at a time, "Older" going on from the
 * page's `next`. The selector may be a topic, a URI template or `*`; the tenant is the
 * credential's own unless named (`*`: every tenant, each event then says whose it is).
 */

const DATA_CHARACTERS = 300;

/** Where "Older" goes on from, and the query it belongs to. */
let older: { next: string; query: Record<string, string> } | undefined;

export function setUpHistory(): void {
  $('#history').addEventListener('submit', (event) => {
    event.preventDefault();
    const tenant = inputText('#history-tenant');
    const query = {
      topic: inputText('#history-topic'),
      limit: $<HTMLSelectElement>('#history-limit').value,
      ...(tenant ? { tenant } : {}),
    };
    void browse(query, undefined);
  });
  $('#history-older').addEventListener('click', () => {
    if (older !== undefined) void browse(older.query, older.next);
  });
}

async function browse(query: Record<string, string>, before: string | undefined): Promise<void> {
  const answer = await api<HistoryPage>('v1/history', {
    ...query,
    ...(before === undefined ? {} : { before }),
  });
  const body = $('#history-events tbody');
  const button = $<HTMLButtonElement>('#history-older');
  if (!answer.ok || answer.body === undefined) {
    older = undefined;
    button.hidden = true;
    return report('#history-result', answer.status, answer.problem);
  }
  const { events, next, complete } = answer.body;
  older = next === undefined ? undefined : { next, query };
  button.hidden = older === undefined;
  const pageNumber = before === undefined ? 1 : Number($('#history-result').dataset.page ?? '1') + 1;
  report(
    '#history-result',
    answer.status,
    `page ${pageNumber}: ${events.length} event${events.length === 1 ? '' : 's'}` +
      (complete ? '' : ' (the scan bound stopped this page early: older goes on from there)') +
      (next === undefined ? '; no older events' : ''),
  );
  Object.assign($('#history-result').dataset, { page: String(pageNumber), count: String(events.length) });
  body.replaceChildren(
    ...events.map((event) => {
      const row = document.createElement('tr');
      Object.assign(row.dataset, { id: event.id, type: event.type });
      const time = cell(event.time.slice(11, 23));
      time.title = event.time;
      const topics =
        event.tenant === undefined
          ? event.topics.join(' ')
          : `${tenantLabel(event.tenant)}: ${event.topics.join(' ')}`;
      row.append(
        time,
        cell(event.id, 'id'),
        cell(event.type),
        nameCell(topics),
        cell(
          event.data.length > DATA_CHARACTERS ? `${event.data.slice(0, DATA_CHARACTERS)}…` : event.data,
          'data',
        ),
      );
      return row;
    }),
  );
}
