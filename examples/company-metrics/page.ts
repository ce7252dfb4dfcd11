/**
 * Seed 003's cockpit widgets with the browser's own EventSource, as the seed's clients had it: the
 * page keeps the id of the last event it handled next to the state that event produced, in one
 * localStorage entry, and after a reload reopens the stream with `lastEventId=` in the query (a
 * new EventSource cannot set the Last-Event-ID header). Herald replays exactly what was missed.
 * With nothing saved, it asks for `snapshot=latest` instead: the latest value of every metric and
 * journey flag (the bridges key them), then live. (herald/client does all of this by itself; this
 * page shows the protocol underneath.)
 */

interface MetricUpdated {
  readonly metricName: string;
  readonly value: number;
  readonly calculatedAt?: string;
}
interface JourneyFlagUpdated {
  readonly userId: string;
  readonly flag: string;
}
interface Activity {
  readonly id: string;
  readonly kind: 'metric' | 'journey';
  readonly name: string;
  readonly value: string;
}
/** What the dashboard shows, and the id of the last event it includes. */
interface Saved {
  lastEventId?: string;
  metrics: Record<string, number>;
  flags: Record<string, string>;
  activity: Activity[];
}

const ACTIVITY = 100;
const root = document.getElementById('root') as HTMLElement;

/** A new element with these properties set (`textContent`, `className`, `hidden`…). */
function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Readonly<Record<string, unknown>> = {},
): HTMLElementTagNameMap[K] {
  return Object.assign(document.createElement(tag), props);
}

async function main(): Promise<void> {
  const me = await fetch('/api/me');
  if (!me.ok) {
    root.append(
      element('p', { textContent: `Signed out: ${((await me.json()) as { detail: string }).detail}` }),
    );
    return;
  }
  const { companyId } = (await me.json()) as { companyId: string };
  const key = `company-metrics:${companyId}`;
  const state: Saved = JSON.parse(localStorage.getItem(key) ?? 'null') ?? {
    metrics: {},
    flags: {},
    activity: [],
  };
  // One write per event: the position in the stream never runs ahead of, or behind, the state.
  const save = () => localStorage.setItem(key, JSON.stringify(state));

  const status = element('span', { className: 'status', textContent: 'connecting' });
  const header = element('header');
  header.append(element('h1', { textContent: `Company ${companyId}` }), status);
  const resume = element('p', {
    className: 'resume',
    textContent: state.lastEventId ? `resumed after event ${state.lastEventId}` : 'new session',
  });
  const gap = element('p', { className: 'gap', hidden: true });
  const grid = element('section', { className: 'grid' });
  root.append(header, resume, gap, grid);

  const render = () => {
    const metrics = Object.entries(state.metrics).map(([name, value]) => {
      const card = element('article', { className: 'metric' });
      card.dataset.metric = name;
      card.append(
        element('h2', { textContent: name.replaceAll('_', ' ') }),
        element('div', { className: 'value', textContent: String(value) }),
      );
      return card;
    });
    const flags = element('article', { className: 'panel journey' });
    const flagList = element('ul');
    for (const [userId, flag] of Object.entries(state.flags)) {
      flagList.append(element('li', { textContent: `${userId}: ${flag}` }));
    }
    flags.append(element('h2', { textContent: 'journeys' }), flagList);
    const activity = element('article', { className: 'panel activity' });
    const list = element('ol', { reversed: true });
    for (const entry of state.activity) {
      const item = element('li', { textContent: `${entry.name} = ${entry.value}` });
      item.dataset.id = entry.id;
      item.dataset.kind = entry.kind;
      item.dataset.name = entry.name;
      item.dataset.value = entry.value;
      list.append(item);
    }
    activity.append(element('h2', { textContent: 'activity' }), list);
    grid.replaceChildren(...metrics, flags, activity);
  };
  // While the snapshot arrives its events are values, not a place in the log: the stream resumes
  // from `herald.history`'s id, which follows them.
  let inSnapshot = false;
  const record = (event: MessageEvent<string>, entry: Omit<Activity, 'id'>) => {
    if (!inSnapshot) state.lastEventId = event.lastEventId;
    state.activity = [{ id: event.lastEventId, ...entry }, ...state.activity].slice(0, ACTIVITY);
    save();
    render();
  };
  render();

  const query = new URLSearchParams();
  query.append('topic', `companies/${companyId}/metrics/{metric}`);
  query.append('topic', `companies/${companyId}/journey/{change}`);
  if (state.lastEventId) query.set('lastEventId', state.lastEventId);
  else query.set('snapshot', 'latest');
  // Same origin: the session cookie authenticates the stream, and names the company.
  const source = new EventSource(`/realtime/v1/events?${query}`);
  source.addEventListener('open', () => {
    status.dataset.status = 'open';
    status.textContent = 'live';
  });
  source.addEventListener('error', () => {
    status.dataset.status = source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting';
    status.textContent = status.dataset.status;
  });
  // Its id is where this stream resumes from: keeping it means a reload before the first event
  // still misses nothing published in between. A stream that starts with a snapshot has no id
  // here; `herald.history` brings it once the snapshot is in.
  source.addEventListener('herald.connected', (event) => {
    inSnapshot = (JSON.parse(event.data) as { history?: string }).history === 'snapshot';
    if (inSnapshot) return;
    state.lastEventId = event.lastEventId;
    save();
  });
  source.addEventListener('herald.history', (event) => {
    inSnapshot = false;
    state.lastEventId = event.lastEventId;
    save();
  });
  source.addEventListener('herald.gap', (event) => {
    const { reason } = JSON.parse(event.data) as { reason: string };
    gap.hidden = false;
    gap.textContent = `Some updates could not be replayed (${reason}); the figures may be behind until they change again.`;
  });
  source.addEventListener('metric_updated', (event) => {
    const data = JSON.parse(event.data) as MetricUpdated;
    state.metrics[data.metricName] = data.value;
    record(event, { kind: 'metric', name: data.metricName, value: String(data.value) });
  });
  source.addEventListener('journey_flag_updated', (event) => {
    const data = JSON.parse(event.data) as JourneyFlagUpdated;
    state.flags[data.userId] = data.flag;
    record(event, { kind: 'journey', name: data.userId, value: data.flag });
  });
}

void main();
