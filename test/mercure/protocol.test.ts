import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, hubOn } from '../helpers/backends.ts';
import type { TestHub } from '../helpers/server.ts';
import { bearer, MERCURE_SECRET, mercurePublish, mercureStream, mercureToken } from './mercure-client.ts';

const unique = () => `https://example.com/books/${globalThis.crypto.randomUUID()}`;

for (const backend of BACKENDS) {
  describe(`Mercure subscribe and publish (${backend.name})`, () => {
    let hub: TestHub;
    let publisher: Record<string, string>;
    before(async () => {
      hub = await hubOn(backend, {
        auth: { jwt: { secrets: [MERCURE_SECRET] }, anonymous: true },
        heartbeatMs: 200,
      });
      publisher = bearer(await mercureToken({ publish: ['*'] }));
    });
    after(() => hub.close());

    test('a form-encoded publish answers 200 text/plain with the id, and the update is framed as the reference hub frames it', async () => {
      const topic = unique();
      const stream = await mercureStream(hub.url, [topic]);
      const published = await mercurePublish(
        hub.url,
        { topic, data: 'line one\nline two\r\n\nlast', id: 'urn:revision:1', type: 'book', retry: '2500' },
        publisher,
      );
      assert.equal(published.status, 200);
      assert.match(published.contentType ?? '', /^text\/plain/);
      assert.equal(published.body, 'urn:revision:1');
      await stream.untilData(1);
      assert.deepEqual(stream.events[0], { ...stream.events[0], id: 'urn:revision:1', type: 'book' });
      assert.equal(stream.events[0]?.data, 'line one\nline two\n\nlast');
      assert.deepEqual(stream.retries, [2500]);
      assert.ok(
        stream.raw.includes(
          'id: urn:revision:1\nevent: book\nretry: 2500\ndata: line one\ndata: line two\ndata: \ndata: last\n\n',
        ),
        stream.raw,
      );
      stream.close();
    });

    test('the stream opens with a comment, carries no herald.* events, and sends heartbeat comments', async () => {
      const stream = await mercureStream(hub.url, [unique()]);
      assert.equal(stream.status, 200);
      assert.equal(stream.headers['content-type'], 'text/event-stream');
      assert.equal(
        stream.headers['cache-control'],
        'private, no-cache, no-store, must-revalidate, max-age=0',
      );
      assert.equal(stream.headers.pragma, 'no-cache');
      assert.equal(stream.headers.expire, '0');
      assert.equal(stream.headers['x-accel-buffering'], 'no');
      assert.equal(stream.headers['last-event-id'], undefined, 'no Last-Event-ID was asked for');
      await stream.until((s) => s.comments.length >= 2, 3000, 'a heartbeat');
      assert.ok(stream.raw.startsWith(':\n'), JSON.stringify(stream.raw));
      assert.equal(stream.events.length, 0);
      stream.close();
    });

    test('without an id the hub answers a urn:uuid, and subscribers see that same id', async () => {
      const topic = unique();
      const stream = await mercureStream(hub.url, [topic]);
      const published = await mercurePublish(hub.url, { topic, data: 'x' }, publisher);
      assert.match(published.body, /^urn:uuid:[0-9a-f-]{36}$/);
      await stream.untilData(1);
      assert.equal(stream.events[0]?.id, published.body);
      stream.close();
    });

    test('an update reaches selectors matching its canonical or an alternate topic, exactly or by URI template, and no others', async () => {
      const canonical = unique();
      const alternate = `https://example.com/users/${globalThis.crypto.randomUUID()}`;
      const exact = await mercureStream(hub.url, [canonical]);
      const byAlternate = await mercureStream(hub.url, ['https://example.com/nothing', alternate]);
      const byTemplate = await mercureStream(hub.url, ['https://example.com/books/{id}']);
      const all = await mercureStream(hub.url, ['*']);
      const other = await mercureStream(hub.url, ['https://example.com/authors/{id}']);
      await mercurePublish(hub.url, { topic: [canonical, alternate], data: 'both' }, publisher);
      await Promise.all([exact, byAlternate, byTemplate, all].map((s) => s.untilData(1)));
      for (const stream of [exact, byAlternate, byTemplate, all])
        assert.equal(stream.events[0]?.data, 'both');
      await mercurePublish(hub.url, { topic: 'https://example.com/authors/1', data: 'author' }, publisher);
      await other.untilData(1);
      assert.deepEqual(
        other.events.map((e) => e.data),
        ['author'],
      );
      assert.deepEqual(
        exact.events.map((e) => e.data),
        ['both'],
      );
      for (const stream of [exact, byAlternate, byTemplate, all, other]) stream.close();
    });

    test('Last-Event-ID resumes after a publisher-chosen id and the response header echoes it', async () => {
      const topic = unique();
      const ids = ['urn:r:1', 'urn:r:2', 'urn:r:3'].map((id) => `${id}:${topic}`);
      for (const [i, id] of ids.entries())
        await mercurePublish(hub.url, { topic, data: `v${i}`, id }, publisher);
      const byHeader = await mercureStream(hub.url, [topic], { lastEventId: ids[0] as string });
      assert.equal(byHeader.headers['last-event-id'], ids[0]);
      await byHeader.untilData(2);
      assert.deepEqual(
        byHeader.events.map((e) => [e.id, e.data]),
        [
          [ids[1], 'v1'],
          [ids[2], 'v2'],
        ],
      );
      // The query parameter for a first connection; the header wins over it.
      const byQuery = await mercureStream(hub.url, [topic], { query: { lastEventID: ids[1] as string } });
      assert.equal(byQuery.headers['last-event-id'], ids[1]);
      await byQuery.untilData(1);
      const both = await mercureStream(hub.url, [topic], {
        lastEventId: ids[1] as string,
        query: { lastEventID: ids[0] as string },
      });
      assert.equal(both.headers['last-event-id'], ids[1]);
      await mercurePublish(hub.url, { topic, data: 'live' }, publisher);
      await Promise.all([both.untilData(2), byQuery.untilData(2)]);
      assert.deepEqual(
        both.events.map((e) => e.data),
        ['v2', 'live'],
      );
      assert.deepEqual(
        byQuery.events.map((e) => e.data),
        ['v2', 'live'],
      );
      for (const stream of [byHeader, byQuery, both]) stream.close();
    });

    test('earliest replays every retained update of the topics, and an unknown id gets the same, both answered "earliest"', async () => {
      const topic = unique();
      for (const data of ['a', 'b']) await mercurePublish(hub.url, { topic, data }, publisher);
      const earliest = await mercureStream(hub.url, [topic], { query: { lastEventID: 'earliest' } });
      const unknown = await mercureStream(hub.url, [topic], { lastEventId: 'urn:never:published' });
      assert.equal(earliest.headers['last-event-id'], 'earliest');
      assert.equal(unknown.headers['last-event-id'], 'earliest');
      await Promise.all([earliest.untilData(2), unknown.untilData(2)]);
      assert.deepEqual(
        earliest.events.map((e) => e.data),
        ['a', 'b'],
      );
      assert.deepEqual(
        unknown.events.map((e) => e.data),
        ['a', 'b'],
      );
      earliest.close();
      unknown.close();
    });

    test('a repeated id names the newest update that has it: resuming from it continues after that one', async () => {
      const topic = unique();
      const id = `urn:revision:${topic}`;
      assert.equal((await mercurePublish(hub.url, { topic, data: 'first', id }, publisher)).status, 200);
      assert.equal((await mercurePublish(hub.url, { topic, data: 'second', id }, publisher)).status, 200);
      await mercurePublish(hub.url, { topic, data: 'after' }, publisher);
      const stream = await mercureStream(hub.url, [topic], { lastEventId: id });
      await stream.untilData(1);
      assert.deepEqual(
        stream.events.map((e) => e.data),
        ['after'],
      );
      stream.close();
    });
  });
}

describe('Mercure requests that are refused', () => {
  let hub: TestHub;
  let publisher: Record<string, string>;
  before(async () => {
    hub = await hubOn(BACKENDS[0] as (typeof BACKENDS)[0], {
      auth: { jwt: { secrets: [MERCURE_SECRET] }, anonymous: true },
    });
    publisher = bearer(await mercureToken({ publish: ['*'] }));
  });
  after(() => hub.close());

  const problem = async (response: Response) => {
    assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
    return (await response.json()) as { detail: string; code: string };
  };

  test('a subscription without a topic is 400', async () => {
    const response = await fetch(`${hub.url}/.well-known/mercure`);
    assert.equal(response.status, 400);
    assert.match((await problem(response)).detail, /topic is required/);
  });

  for (const [name, update, code] of [
    ['a publish without a topic', { topic: [], data: 'x' }, 'topic-required'],
    ['a retry that is not a whole number', { topic: 'a', retry: '1.5' }, 'invalid-retry'],
    ['a negative retry', { topic: 'a', retry: '-1' }, 'invalid-retry'],
    ['an id with LF', { topic: 'a', id: 'x\ndata: forged' }, 'invalid-id'],
    ['an id with CR', { topic: 'a', id: 'x\rdata: forged' }, 'invalid-id'],
    ['an id with NUL', { topic: 'a', id: 'x\u0000' }, 'invalid-id'],
    ['an id starting with #', { topic: 'a', id: '#1' }, 'invalid-id'],
    ['a type with LF', { topic: 'a', type: 'x\nid: 1' }, 'invalid-type'],
  ] as const) {
    test(`${name} is 400 and publishes nothing`, async () => {
      const before = hub.herald.hub.counters.published;
      const response = await mercurePublish(hub.url, update, publisher);
      assert.equal(response.status, 400);
      assert.equal((JSON.parse(response.body) as { code: string }).code, code);
      assert.equal(hub.herald.hub.counters.published, before);
    });
  }

  test('a topic in the reserved /.well-known/mercure namespace is 403', async () => {
    const response = await mercurePublish(
      hub.url,
      { topic: ['https://example.com/a', 'https://example.com/.well-known/mercure/subscriptions/x/y'] },
      publisher,
    );
    assert.equal(response.status, 403);
    assert.match(response.body, /reserved/);
  });

  test('a publish that is not a form is 415', async () => {
    const response = await fetch(`${hub.url}/.well-known/mercure`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...publisher },
      body: JSON.stringify({ topic: 'a' }),
    });
    assert.equal(response.status, 415);
    assert.match((await problem(response)).detail, /application\/x-www-form-urlencoded/);
  });

  test('an unsupported method names the allowed ones', async () => {
    const response = await fetch(`${hub.url}/.well-known/mercure`, { method: 'DELETE' });
    assert.equal(response.status, 405);
    assert.equal(response.headers.get('allow'), 'GET, POST');
  });
});
