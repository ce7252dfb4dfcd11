import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHub, type TestHub } from '../helpers/server.ts';
import { bearer, MERCURE_SECRET, mercureStream, mercureToken } from './mercure-client.ts';

const SUBSCRIPTIONS = '/.well-known/mercure/subscriptions';
const SELECTOR = 'https://example.com/books/{id}';
/** Go's url.QueryEscape of the selector, as the reference hub writes it in subscription URLs. */
const ESCAPED = 'https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D';

interface SubscriptionDocument {
  '@context'?: string;
  id: string;
  type: string;
  subscriber: string;
  topic: string;
  active: boolean;
  payload?: unknown;
  lastEventID?: string;
}

describe('Mercure active subscriptions', () => {
  let hub: TestHub;
  let watcher: Record<string, string>;
  before(async () => {
    hub = await startHub({
      auth: { jwt: { secrets: [MERCURE_SECRET] }, anonymous: true },
      mercure: { subscriptions: true },
    });
    await hub.herald.hub.whenReady();
    watcher = bearer(await mercureToken({ subscribe: [`${SUBSCRIPTIONS}{/topic}{/subscriber}`] }));
  });
  after(() => hub.close());

  const api = async (path: string, headers: Record<string, string> = watcher) => {
    const response = await fetch(`${hub.url}${path}`, { headers });
    return { response, body: response.status === 200 ? await response.json() : await response.text() };
  };

  test('a subscriber that connects and leaves is announced with private JSON-LD updates carrying its payload', async () => {
    const events = await mercureStream(hub.url, [`${SUBSCRIPTIONS}{/topic}{/subscriber}`], {
      headers: watcher,
    });
    const anonymous = await mercureStream(hub.url, [`${SUBSCRIPTIONS}{/topic}{/subscriber}`]);
    const jwt = await mercureToken({ subscribe: [], payload: { user: 'alice' } });
    const subscriber = await mercureStream(hub.url, [SELECTOR, 'https://example.com/authors/1'], {
      headers: bearer(jwt),
    });
    // The watcher sees every subscriber come and go, the anonymous one too: keep this one's.
    const announced = () =>
      events.events
        .map((e) => JSON.parse(e.data) as SubscriptionDocument)
        .filter((d) => d.topic !== `${SUBSCRIPTIONS}{/topic}{/subscriber}`);
    await events.until(() => announced().length >= 2);
    subscriber.close();
    await events.until(() => announced().length >= 4);
    const documents = announced();
    const [first, second, third] = documents;
    assert.ok(first !== undefined && second !== undefined && third !== undefined);
    assert.equal(first['@context'], 'https://mercure.rocks/');
    assert.equal(first.type, 'Subscription');
    assert.equal(first.topic, SELECTOR);
    assert.match(first.subscriber, /^urn:uuid:/);
    assert.equal(first.id, `${SUBSCRIPTIONS}/${ESCAPED}/${encodeURIComponent(first.subscriber)}`);
    assert.equal(first.active, true);
    assert.deepEqual(first.payload, { user: 'alice' });
    assert.equal(second.topic, 'https://example.com/authors/1');
    assert.deepEqual(
      documents.slice(2).map((d) => [d.topic, d.active]),
      [
        [SELECTOR, false],
        ['https://example.com/authors/1', false],
      ],
    );
    // The update's id is its topic, as the spec requires.
    assert.ok(events.events.some((e) => e.data.includes(`"id": "${first.id}"`)));
    assert.equal(anonymous.events.length, 0, 'subscription updates are private');
    events.close();
    anonymous.close();
  });

  test('the API lists active subscriptions, by selector and one by one, with lastEventID as ETag', async () => {
    const subscriber = await mercureStream(hub.url, [SELECTOR], {
      headers: bearer(await mercureToken({ payload: { user: 'bob' } })),
    });
    let all!: { response: Response; body: { subscriptions: SubscriptionDocument[]; lastEventID: string } };
    for (let i = 0; i < 50; i++) {
      all = (await api(SUBSCRIPTIONS)) as typeof all;
      if (all.body.subscriptions.some((s) => s.topic === SELECTOR)) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(all.response.status, 200);
    assert.equal(all.response.headers.get('content-type'), 'application/ld+json');
    assert.equal(all.response.headers.get('etag'), all.body.lastEventID);
    assert.notEqual(all.body.lastEventID, 'earliest');
    const mine = all.body.subscriptions.find((s) => s.topic === SELECTOR) as SubscriptionDocument;
    assert.deepEqual(mine.payload, { user: 'bob' });
    assert.equal(mine['@context'], undefined, 'members inherit the collection context');
    assert.deepEqual(Object.keys(all.body), ['@context', 'id', 'type', 'lastEventID', 'subscriptions']);

    const byTopic = await api(`${SUBSCRIPTIONS}/${ESCAPED}`);
    assert.deepEqual(
      (byTopic.body as { subscriptions: SubscriptionDocument[] }).subscriptions.map((s) => s.id),
      [mine.id],
    );
    const one = await api(mine.id);
    assert.equal(one.response.status, 200);
    assert.deepEqual(one.body, {
      ...mine,
      '@context': 'https://mercure.rocks/',
      lastEventID: all.body.lastEventID,
    });

    const cached = await fetch(`${hub.url}${SUBSCRIPTIONS}`, {
      headers: { ...watcher, 'if-none-match': all.body.lastEventID },
    });
    assert.equal(cached.status, 304);

    // lastEventID is where a client subscribes from to miss no later change.
    const changes = await mercureStream(hub.url, [`${SUBSCRIPTIONS}{/topic}{/subscriber}`], {
      headers: watcher,
      query: { lastEventID: all.body.lastEventID },
    });
    subscriber.close();
    const ofMine = () =>
      changes.events
        .map((e) => JSON.parse(e.data) as SubscriptionDocument)
        .filter((d) => d.subscriber === mine.subscriber);
    await changes.until(() => ofMine().length >= 1);
    assert.deepEqual(
      ofMine().map((d) => d.active),
      [false],
    );
    changes.close();
    for (let i = 0; i < 50 && (await api(mine.id)).response.status !== 404; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal((await api(mine.id)).response.status, 404);
  });

  test('the API needs a token whose mercure.subscribe matches the requested URL', async () => {
    assert.equal((await api(SUBSCRIPTIONS, {})).response.status, 401);
    const other = bearer(await mercureToken({ subscribe: ['https://example.com/{x}'] }));
    const refused = await api(SUBSCRIPTIONS, other);
    assert.equal(refused.response.status, 403);
    assert.match(String(refused.body), /mercure\.subscribe/);
  });
});
