import type { Presence } from '../cluster/presence.ts';
import { api } from './api.ts';
import { $, cell, count, inputText, nameCell, report } from './dom.ts';

/**
 * Who is on a topic across the cluster (`GET /v1/presence`): how many streams and distinct
 * subjects, and the subjects with their streams (an admin sees them). One topic, not a selector;
 * within the tenant the filter names (an admin of the default tenant may name any), else the
 * credential's own.
 */

const MEMBER_ROWS = 500;

export function setUpPresence(): void {
  $('#presence').addEventListener('submit', (event) => {
    event.preventDefault();
    void show();
  });
}

async function show(): Promise<void> {
  const tenant = inputText('#presence-tenant');
  const answer = await api<Presence>('v1/presence', {
    topic: inputText('#presence-topic'),
    ...(tenant ? { tenant } : {}),
  });
  const body = $('#members tbody');
  if (!answer.ok || answer.body === undefined) {
    body.replaceChildren();
    return report('#presence-result', answer.status, answer.problem);
  }
  const { connections, subjects, members = [], truncated, incomplete } = answer.body;
  report(
    '#presence-result',
    answer.status,
    `${count(connections)} stream${connections === 1 ? '' : 's'}, ${count(subjects)} subject${subjects === 1 ? '' : 's'}` +
      (truncated ? ` (the first ${members.length} listed)` : '') +
      (incomplete.length > 0 ? `; no answer in time from ${incomplete.join(', ')}` : ''),
  );
  Object.assign($('#presence-result').dataset, {
    connections: String(connections),
    subjects: String(subjects),
  });
  body.replaceChildren(
    ...members.slice(0, MEMBER_ROWS).map((member) => {
      const row = document.createElement('tr');
      Object.assign(row.dataset, { subject: member.subject, connections: String(member.connections) });
      row.append(nameCell(member.subject), cell(String(member.connections), 'number'));
      return row;
    }),
  );
}
