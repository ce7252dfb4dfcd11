import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { metricsOf } from '../../src/observability/metrics.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import type { SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { Scrape, scrape } from './scrape.ts';

const CLI = fileURLToPath(new URL('../../src/server/cli.ts', import.meta.url));

const auth = { jwt: { secrets: [SECRET] } };

/** Scrapes until `condition` holds (the hub learns of a closed socket a moment after the client). */
async function scrapeUntil(
  url: string,
  headers: Record<string, string>,
  condition: (scraped: Scrape) => boolean,
  what: string,
): Promise<Scrape> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const scraped = await scrape(url, headers);
    if (condition(scraped)) return scraped;
    await sleep(20);
  }
  assert.fail(`/metrics never showed ${what}`);
}

/** A stream whose client reads nothing until told: the socket fills and the hub's outbox with it. */
async function stalledStream(
  url: string,
): Promise<{ socket: Socket; read: (until: (text: string) => boolean) => Promise<string> }> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  socket.write(`GET /v1/events?topic=big HTTP/1.1\r\nhost: ${hostname}\r\naccept: text/event-stream\r\n\r\n`);
  // The headers and herald.connected first, then nothing more is read.
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.pause();
  return {
    socket,
    async read(until) {
      let text = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => {
        text += chunk;
      });
      socket.resume();
      for (let attempt = 0; attempt < 100 && !until(text); attempt++) await sleep(20);
      // Whatever the hub still had queued behind it.
      await sleep(100);
      return text;
    },
  };
}

/** Publishes 256 KiB events in batches until `done` holds or 64 MiB have gone out. */
async function publishUntil(hub: TestHub, done: () => boolean): Promise<number> {
  const data = 'x'.repeat(256 * 1024);
  let events = 0;
  for (let batch = 0; batch < 32 && !done(); batch++) {
    await hub.herald.publish(Array.from({ length: 8 }, () => ({ topic: 'big', data })));
    events += 8;
    await sleep(10);
  }
  return events;
}

describe('/metrics', () => {
  let hub: TestHub;
  let admin: Record<string, string>;

  before(async () => {
    hub = await startHub({ auth });
    admin = bearer(await token({ admin: true, sub: 'prometheus' }));
  });
  after(() => hub.close());

  test('counts exactly the streams opened, events published and delivered, bytes written and closes', async () => {
    const before = await scrape(hub.url, admin);
    assert.equal(before.value('herald_connections_total'), 0);
    assert.equal(before.value('herald_events_published_total'), 0);

    const acme = bearer(await token({ tenant: 'acme', sub: 'a', publish: ['orders'] }));
    const globex = bearer(await token({ tenant: 'globex', sub: 'g', publish: ['orders'] }));
    const streams: SseStream[] = [];
    for (let i = 0; i < 3; i++) streams.push(await hub.subscribe('topic=orders', { headers: acme }));
    streams.push(await hub.subscribe('topic=orders', { headers: globex }));
    await Promise.all(streams.map((stream) => stream.untilConnected()));

    const M = 4;
    const published = await hub.publish(
      Array.from({ length: M }, (_, n) => ({ topic: 'orders', data: { n } })),
      acme,
    );
    assert.equal(published.status, 202);
    assert.equal((await hub.publish({ topic: 'orders', data: 'one' }, globex)).status, 202);
    await Promise.all(streams.slice(0, 3).map((stream) => stream.untilData(M)));
    await (streams[3] as SseStream).untilData(1);

    const scraped = await scrape(hub.url, admin);
    assert.equal(scraped.value('herald_connections', { tenant: 'acme' }), 3);
    assert.equal(scraped.value('herald_connections', { tenant: 'globex' }), 1);
    assert.equal(scraped.value('herald_connections_total'), 4);
    assert.equal(scraped.value('herald_connections_opened_total'), 4);
    assert.equal(scraped.value('herald_events_published_total'), M + 1);
    assert.equal(scraped.value('herald_events_delivered_total'), 3 * M + 1);
    // Every byte the clients received is counted, and nothing else.
    const received = streams.reduce((sum, stream) => sum + Buffer.byteLength(stream.raw), 0);
    assert.equal(scraped.value('herald_bytes_written_total'), received);
    // Two publish calls, five events each written once (whatever the number of recipients).
    assert.equal(scraped.histogramCount('herald_broker_append_duration_seconds'), 2);
    assert.equal(scraped.histogramCount('herald_publish_to_write_seconds'), M + 1);
    assert.equal(scraped.value('herald_history_events'), M + 1);

    streams[0]?.close();
    const afterClose = await scrapeUntil(
      hub.url,
      admin,
      (s) => s.value('herald_connections_total') === 3,
      'the closed stream',
    );
    assert.equal(afterClose.value('herald_connections_closed_total', { reason: 'client' }), 1);
    assert.equal(afterClose.value('herald_connections_closed_total', { reason: 'overflow' }), 0);
    assert.equal(afterClose.value('herald_connections', { tenant: 'acme' }), 2);

    // A resume from the first event replays the three after it; an unknown id gets a gap.
    const firstId = (published.body.ids as string[])[0] as string;
    const resumed = await hub.subscribe('topic=orders', { headers: acme, lastEventId: firstId });
    await resumed.untilData(M - 1);
    const lost = await hub.subscribe('topic=orders', { headers: acme, lastEventId: 'no-such-id' });
    await lost.until((s) => s.events.some((event) => event.type === 'herald.gap'), 5000, 'herald.gap');
    const resumes = await scrape(hub.url, admin);
    assert.equal(resumes.value('herald_replays_total'), 1);
    assert.equal(resumes.value('herald_events_replayed_total'), M - 1);
    assert.equal(resumes.value('herald_gaps_total'), 1);
    assert.equal(resumes.value('herald_connections_opened_total'), 6);
    for (const stream of [...streams, resumed, lost]) stream.close();
  });

  test('counts refused credentials by reason, the refused scrapes included', async () => {
    const before = await scrape(hub.url, admin);
    const count = (scraped: Scrape, reason: string) =>
      scraped.value('herald_auth_failures_total', { reason });
    const expired = bearer(await token({ expiresIn: -60 }));
    const forged = bearer(await token({ secret: 'not-the-hub-secret-but-long-enough-for-hs256' }));
    const tenant = bearer(await token({ tenant: 'acme' }));
    const codes: string[] = [];
    for (const [path, headers] of [
      ['/v1/events?topic=orders', {}],
      ['/v1/events?topic=orders', expired],
      ['/v1/events?topic=orders', expired],
      ['/v1/events?topic=orders', forged],
      ['/metrics', tenant],
      ['/metrics', {}],
    ] as const) {
      const response = await fetch(`${hub.url}${path}`, { headers });
      assert.ok(response.status === 401 || response.status === 403, `${path} refused`);
      codes.push(((await response.json()) as { code: string }).code);
    }
    assert.deepEqual(codes, [
      'token-required',
      'token-expired',
      'token-expired',
      'token-signature-invalid',
      'admin-required',
      'token-required',
    ]);
    const scraped = await scrape(hub.url, admin);
    assert.equal(count(scraped, 'token-required') - count(before, 'token-required'), 2);
    assert.equal(count(scraped, 'token-expired') - count(before, 'token-expired'), 2);
    assert.equal(count(scraped, 'token-signature-invalid') - count(before, 'token-signature-invalid'), 1);
    assert.equal(count(scraped, 'admin-required') - count(before, 'admin-required'), 1);
  });

  test('labels at most the configured number of tenants and sums the rest as other', async () => {
    const small = await startHub({ auth, metrics: { tenantLabels: 2 } });
    try {
      const streams: SseStream[] = [];
      // Three streams in t1, two in t2, one each in t3 and t4: t1 and t2 keep their labels.
      for (const [tenant, n] of [
        ['t1', 3],
        ['t2', 2],
        ['t3', 1],
        ['t4', 1],
      ] as const) {
        const headers = bearer(await token({ tenant }));
        for (let i = 0; i < n; i++) streams.push(await small.subscribe('topic=x', { headers }));
      }
      await Promise.all(streams.map((stream) => stream.untilConnected()));
      const scraped = await scrape(small.url, admin);
      const series = scraped.family('herald_connections').metrics.map((m) => [m.labels?.tenant, m.value]);
      assert.deepEqual(series, [
        ['t1', '3'],
        ['t2', '2'],
        ['other', '2'],
      ]);
    } finally {
      await small.close();
    }
  });

  test('counts a slow consumer cut off, and the events a drop-oldest outbox gave up', async () => {
    const outbox = { maxEvents: 4, maxBytes: 16 * 1024 * 1024 };
    const cutting = await startHub({
      outbox: { ...outbox, policy: 'disconnect' },
      metrics: { public: true },
    });
    const dropping = await startHub({
      outbox: { ...outbox, policy: 'drop-oldest' },
      metrics: { public: true },
    });
    try {
      const slow = await stalledStream(cutting.url);
      await publishUntil(cutting, () => cutting.herald.hub.counters.closed.overflow > 0);
      const cut = await scrape(cutting.url);
      assert.equal(cut.value('herald_slow_consumer_disconnects_total'), 1);
      assert.equal(cut.value('herald_connections_closed_total', { reason: 'overflow' }), 1);
      assert.equal(cut.value('herald_connections_total'), 0);
      slow.socket.destroy();

      const behind = await stalledStream(dropping.url);
      await publishUntil(dropping, () => dropping.herald.hub.counters.droppedEvents > 0);
      // The client, reading again, is told how many it missed: the same figure as /metrics.
      const text = await behind.read((received) => received.includes('"dropped":'));
      const gaps = [...text.matchAll(/"reason":"overflow","dropped":(\d+)/g)];
      const told = gaps.reduce((sum, match) => sum + Number(match[1]), 0);
      const dropped = await scrape(dropping.url);
      assert.ok(told > 0, 'the client got a herald.gap for what was dropped');
      assert.equal(dropped.value('herald_outbox_dropped_events_total'), told);
      assert.equal(dropped.value('herald_gaps_total'), gaps.length);
      assert.equal(dropped.value('herald_slow_consumer_disconnects_total'), 0);
      behind.socket.destroy();
    } finally {
      await cutting.close();
      await dropping.close();
    }
  });

  test('is served without credentials only when metrics are public', async () => {
    assert.equal((await fetch(`${hub.url}/metrics`)).status, 401);
    const open = await startHub({ auth, metrics: { public: true } });
    try {
      const scraped = await scrape(open.url);
      assert.equal(scraped.value('herald_connections_total'), 0);
    } finally {
      await open.close();
    }
  });

  test('an embedding app can read the same registry without the route', async () => {
    const { registry } = metricsOf(hub.herald);
    const direct = new Scrape(await registry.metrics());
    const routed = await scrape(hub.url, admin);
    assert.equal(
      direct.value('herald_events_published_total'),
      routed.value('herald_events_published_total'),
    );
    assert.ok(direct.value('herald_events_published_total') > 0);
  });

  test('each worker of --workers answers with its own figures, labelled with its number', async () => {
    const child = spawn(
      process.execPath,
      [CLI, 'serve', '--port', '0', '--workers', '2', '--metrics-public'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    try {
      let url = '';
      // Up to a minute: a primary and two workers compile their TypeScript as they start.
      for (let attempt = 0; attempt < 1200 && url === ''; attempt++) {
        url = /listening on (http:\/\/[\d.:]+)/.exec(output)?.[1] ?? '';
        if (url === '') await sleep(50);
      }
      assert.ok(url, `herald serve --workers 2 printed no URL: ${output}`);
      const workers = new Set<string>();
      // The kernel picks the worker of each connection: scrape until both answered, within bounds.
      for (let attempt = 0; attempt < 100 && workers.size < 2; attempt++) {
        const scraped = await scrape(url, { connection: 'close' });
        for (const metric of scraped.family('herald_connections_total').metrics) {
          workers.add(String(metric.labels?.worker));
        }
      }
      assert.deepEqual([...workers].sort(), ['1', '2']);
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  });

  test('two hubs in one process keep their figures apart', async () => {
    const other = await startHub({ auth });
    try {
      const theirs = bearer(await token({ publish: ['x'] }));
      assert.equal((await other.publish({ topic: 'x', data: 1 }, theirs)).status, 202);
      const scrapedOther = await scrape(other.url, admin);
      const scrapedOurs = await scrape(hub.url, admin);
      assert.equal(scrapedOther.value('herald_events_published_total'), 1);
      assert.equal(scrapedOurs.value('herald_events_published_total'), 5);
      assert.notEqual(
        scrapedOther.family('herald_node_info').metrics[0]?.labels?.node,
        scrapedOurs.family('herald_node_info').metrics[0]?.labels?.node,
      );
    } finally {
      await other.close();
    }
  });
});
