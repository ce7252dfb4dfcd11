import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { createHerald } from '../../src/herald.ts';
import type { HeraldLogger } from '../../src/observability/logger.ts';
import type { WebhookNotice } from '../../src/observability/webhooks.ts';
import { resolveConfig } from '../../src/server/config.ts';
import { heraldOptions } from '../../src/server/serve.ts';
import { section } from '../docs/snippet-app.ts';
import { sleep, startHub, type TestHub } from '../helpers/server.ts';
import { WebhookReceiver } from '../helpers/webhook-receiver.ts';

/**
 * `--webhook-url` (docs/hooks.md): streams opened and closed reach the app, here a real HTTP
 * server in the test, signed so that docs/hooks.md's own verification snippet accepts them;
 * retried with backoff after a failure; dropped oldest-first past the queue's bound while the
 * endpoint is down; and never in the way of delivery, even while the endpoint hangs.
 */

const SECRET = 'a-webhook-secret-long-enough-for-hmac-sha256-use';

/** docs/hooks.md's verification snippet, as written there, loaded as a module. */
async function documentedVerifier(): Promise<
  (body: string, header: string, secret: string, toleranceSec?: number) => boolean
> {
  const page = readFileSync(new URL('../../docs/hooks.md', import.meta.url), 'utf8');
  const code = /```js\n([\s\S]*?)```/.exec(section(page, 'Verifying a delivery'))?.[1];
  assert.ok(code, 'docs/hooks.md has the snippet under "## Verifying a delivery"');
  const file = join(dir, 'verify.mjs');
  writeFileSync(file, code);
  const module = (await import(pathToFileURL(file).href)) as {
    verifyHeraldSignature: (body: string, header: string, secret: string, toleranceSec?: number) => boolean;
  };
  return module.verifyHeraldSignature;
}

const dir = mkdtempSync(join(tmpdir(), 'herald-webhooks-'));
const receiver = new WebhookReceiver(SECRET);
const hubs: TestHub[] = [];

async function hubWith(
  webhook: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Promise<TestHub> {
  const hub = await startHub({ webhook: { url: receiver.url, secret: SECRET, ...webhook }, ...extra });
  hubs.push(hub);
  return hub;
}

before(() => receiver.start());

after(async () => {
  await Promise.all(hubs.map((hub) => hub.close()));
  await receiver.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('webhooks', () => {
  test('streams opened and closed reach the app, signed as docs/hooks.md verifies', async () => {
    receiver.deliveries.length = 0;
    receiver.behave = (_delivery, response) => response.writeHead(204).end();
    const hub = await hubWith({});
    const stream = await hub.subscribe('topic=orders&topic=invoices/{id}', {
      headers: { 'x-request-id': 'req-42' },
    });
    await stream.untilConnected();
    const connectionId = stream.connectionId;
    stream.close();
    await receiver.until(() => receiver.notices.some((n) => n.type === 'stream.closed'), 'the close notice');
    const [opened, closed] = receiver.notices;
    assert.equal(opened?.type, 'stream.opened');
    assert.equal(opened?.connectionId, connectionId);
    assert.equal(opened?.requestId, 'req-42');
    assert.equal(opened?.tenant, '');
    assert.equal(opened?.node, hub.herald.nodeId);
    assert.deepEqual(opened?.type === 'stream.opened' && opened.topics, ['orders', 'invoices/{id}']);
    assert.equal(closed?.type, 'stream.closed');
    assert.equal(closed?.type === 'stream.closed' && closed.reason, 'client');
    assert.notEqual(opened?.id, closed?.id);

    const verify = await documentedVerifier();
    for (const delivery of receiver.deliveries) {
      assert.match(delivery.signature, /^t=\d+,v1=[0-9a-f]{64}$/);
      assert.equal(verify(delivery.body, delivery.signature, SECRET), true, 'the snippet accepts it');
      assert.equal(verify(`${delivery.body} `, delivery.signature, SECRET), false, 'a changed body fails');
      assert.equal(verify(delivery.body, delivery.signature, `${SECRET}x`), false, 'another secret fails');
      const old = delivery.signature.replace(/^t=\d+/, `t=${Math.floor(Date.now() / 1000) - 3600}`);
      assert.equal(verify(delivery.body, old, SECRET), false, 'an old timestamp fails');
    }
    assert.equal(hub.herald.webhooks?.stats().delivered, 2);
  });

  test('a failed delivery is retried with growing, jittered waits, then delivered once accepted', async () => {
    receiver.deliveries.length = 0;
    let failures = 2;
    receiver.behave = (_delivery, response) => {
      if (failures-- > 0) response.writeHead(500).end();
      else response.writeHead(200).end();
    };
    const hub = await hubWith({ retryBaseMs: 200 });
    const stream = await hub.subscribe('topic=a');
    await stream.untilConnected();
    await receiver.until(() => receiver.deliveries.length >= 3, 'three attempts');
    await sleep(100);
    const [first, second, third] = receiver.deliveries;
    assert.equal(receiver.deliveries.length, 3, 'no attempt after the one accepted');
    // The same notice every time, re-signed.
    assert.deepEqual(second?.events, first?.events);
    assert.deepEqual(third?.events, first?.events);
    const gaps = [(second?.at ?? 0) - (first?.at ?? 0), (third?.at ?? 0) - (second?.at ?? 0)];
    // Backoff with jitter: 100–200 ms, then 200–400 ms.
    assert.ok(gaps[0] !== undefined && gaps[0] >= 90 && gaps[0] < 1_000, `first wait ${gaps[0]} ms`);
    assert.ok(gaps[1] !== undefined && gaps[1] >= 190 && gaps[1] < 1_500, `second wait ${gaps[1]} ms`);
    const stats = hub.herald.webhooks?.stats();
    assert.equal(stats?.retries, 2);
    assert.equal(stats?.delivered, 1);
    assert.equal(stats?.queued, 0);
    stream.close();
  });

  test('with the endpoint down, the queue stays within its bound, dropping the oldest, said once', async () => {
    const warnings: string[] = [];
    const logger: HeraldLogger = {
      debug() {},
      info() {},
      warn: (_fields, message) => warnings.push(String(message)),
      error() {},
    };
    const herald = createHerald({
      webhook: { url: 'http://127.0.0.1:1/down', secret: SECRET, maxQueue: 100, retryBaseMs: 60_000 },
      logger,
    });
    try {
      const webhooks = herald.webhooks;
      assert.ok(webhooks);
      const notice = (i: number): WebhookNotice => ({
        id: `n${i}`,
        type: 'stream.opened',
        at: new Date().toISOString(),
        node: 'test',
        connectionId: `c${i}`,
        tenant: 't',
        topics: ['a'],
      });
      for (let i = 0; i < 50_000; i++) webhooks.enqueue(notice(i));
      let stats = webhooks.stats();
      assert.ok(stats.queued <= 100, `queued ${stats.queued}`);
      assert.equal(stats.dropped, 50_000 - stats.queued);
      // Still bounded once the first attempt has failed and the retry waits.
      await sleep(200);
      for (let i = 50_000; i < 60_000; i++) webhooks.enqueue(notice(i));
      stats = webhooks.stats();
      assert.ok(stats.queued <= 100, `queued ${stats.queued}`);
      assert.equal(stats.dropped + stats.queued + stats.delivered + stats.failed, 60_000);
      assert.equal(warnings.filter((line) => /queue full/.test(line)).length, 1, warnings.join('\n'));
      assert.equal(warnings.filter((line) => /retrying/.test(line)).length, 1, warnings.join('\n'));
      assert.doesNotMatch(warnings.join('\n'), new RegExp(SECRET));
    } finally {
      await herald.close();
    }
  });

  test('delivery is not slowed while the endpoint hangs', async (t) => {
    receiver.deliveries.length = 0;
    receiver.behave = (_delivery, response) => receiver.hold(response);
    const hooked = await hubWith({ timeoutMs: 30_000 });
    const plain = await startHub();
    hubs.push(plain);

    /** ms until 2 000 events published in batches reach one stream, and until 20 streams open. */
    const measure = async (hub: TestHub) => {
      const stream = await hub.subscribe('topic=load');
      await stream.untilConnected();
      const started = performance.now();
      for (let batch = 0; batch < 20; batch++) {
        const events = Array.from({ length: 100 }, (_, i) => ({ topic: 'load', data: batch * 100 + i }));
        assert.equal((await hub.publish(events)).status, 202);
      }
      await stream.untilData(2_000, 10_000);
      const deliveredMs = performance.now() - started;
      const opening = performance.now();
      const more = await Promise.all(Array.from({ length: 20 }, () => hub.subscribe('topic=other')));
      await Promise.all(more.map((each) => each.untilConnected()));
      const openedMs = performance.now() - opening;
      for (const each of [stream, ...more]) each.close();
      return { deliveredMs, openedMs };
    };

    const baseline = await measure(plain);
    // A first notice, which the endpoint takes and never answers.
    (await hooked.subscribe('topic=first')).close();
    await receiver.until(() => receiver.holding > 0, 'the endpoint holding a delivery');
    const hanging = await measure(hooked);
    assert.ok(receiver.holding > 0, 'the endpoint was still hanging throughout');
    // Generous: the machine is shared, and only a stall (seconds) would mean the hook is in the way.
    assert.ok(
      hanging.deliveredMs < baseline.deliveredMs * 3 + 500,
      `2 000 events in ${Math.round(hanging.deliveredMs)} ms while hanging, ${Math.round(baseline.deliveredMs)} ms without`,
    );
    assert.ok(
      hanging.openedMs < baseline.openedMs * 3 + 500,
      `20 streams opened in ${Math.round(hanging.openedMs)} ms while hanging, ${Math.round(baseline.openedMs)} ms without`,
    );
    assert.ok((hooked.herald.webhooks?.stats().queued ?? 0) > 20, 'the notices wait in the queue');
    t.diagnostic(
      `while hanging: ${Math.round(hanging.deliveredMs)} ms for 2 000 events, ${Math.round(hanging.openedMs)} ms for 20 opens; ` +
        `without a webhook: ${Math.round(baseline.deliveredMs)} ms, ${Math.round(baseline.openedMs)} ms`,
    );
    // Closing does not wait for the hanging endpoint past its grace (2 s).
    const closing = performance.now();
    hubs.splice(hubs.indexOf(hooked), 1);
    await hooked.close();
    const closeMs = performance.now() - closing;
    assert.ok(closeMs < 4_000, `closed in ${Math.round(closeMs)} ms`);
    assert.ok((hooked.herald.webhooks?.stats().failed ?? 0) > 20, 'what could not be sent is counted');
  });

  test("no webhook, no logger: nothing is told of the streams but the cluster's presence feed (no new work)", () => {
    const herald = createHerald({});
    try {
      // The presence feed (src/cluster/presence-feed.ts) hears each open and close, and does
      // nothing more while no stream watches presence: no webhook is queued, no line logged.
      assert.ok(herald.hub.options.lifecycle !== undefined);
      assert.equal(herald.webhooks, undefined);
    } finally {
      void herald.close();
    }
  });

  test('bad options are refused at start: no secret, a short one, a URL that is not http, a negative delay', () => {
    assert.throws(() => createHerald({ webhook: { url: receiver.url, secret: '' } }), /secret is required/);
    assert.throws(() => createHerald({ webhook: { url: receiver.url, secret: 'short' } }), /at least 32/);
    assert.throws(() => createHerald({ webhook: { url: 'ftp://x/', secret: SECRET } }), /http/);
    for (const batchDelayMs of [-1, Number.NaN]) {
      assert.throws(
        () => createHerald({ webhook: { url: receiver.url, secret: SECRET, batchDelayMs } }),
        /webhook\.batchDelayMs must be a number of 0 or more/,
      );
    }
  });

  test('--webhook-batch-delay (HERALD_WEBHOOK_BATCH_DELAY) reaches the webhook; 100 ms unless set', () => {
    const hooks = { webhookUrl: receiver.url, webhookSecret: SECRET };
    assert.equal(heraldOptions(resolveConfig(hooks, {})).webhook?.batchDelayMs, 100);
    assert.equal(
      heraldOptions(resolveConfig({ ...hooks, webhookBatchDelay: '250ms' }, {})).webhook?.batchDelayMs,
      250,
    );
    assert.equal(
      heraldOptions(resolveConfig(hooks, { HERALD_WEBHOOK_BATCH_DELAY: '0' })).webhook?.batchDelayMs,
      0,
    );
    assert.throws(() => resolveConfig({ ...hooks, webhookBatchDelay: 'soon' }, {}), /not a duration/);
  });

  test('batches fill: 50 streams opened together arrive in at most 2 POSTs (batchDelayMs, default 100 ms)', async (t) => {
    receiver.deliveries.length = 0;
    receiver.behave = (_delivery, response) => response.writeHead(204).end();
    const hub = await hubWith({});
    const started = performance.now();
    const streams = await Promise.all(Array.from({ length: 50 }, () => hub.subscribe('topic=crowd')));
    await Promise.all(streams.map((stream) => stream.untilConnected()));
    const openMs = performance.now() - started;
    const opened = () => receiver.notices.filter((notice) => notice.type === 'stream.opened').length;
    await receiver.until(() => opened() >= 50, 'the 50 open notices');
    t.diagnostic(`50 streams opened in ${Math.round(openMs)} ms; ${receiver.deliveries.length} POSTs`);
    assert.ok(receiver.deliveries.length <= 2, `${receiver.deliveries.length} POSTs for 50 opens`);
    for (const stream of streams) stream.close();
    await receiver.until(() => receiver.notices.length >= 100, 'the 50 close notices');
    assert.ok(receiver.deliveries.length <= 4, `${receiver.deliveries.length} POSTs for 50 opens and closes`);
  });

  test('a full batch goes at once, whatever the delay; a lone notice waits the delay, not longer', async () => {
    receiver.deliveries.length = 0;
    receiver.behave = (_delivery, response) => response.writeHead(204).end();
    const full = await hubWith({ maxBatch: 10, batchDelayMs: 60_000 });
    const streams = await Promise.all(Array.from({ length: 11 }, () => full.subscribe('topic=full')));
    await Promise.all(streams.map((stream) => stream.untilConnected()));
    await receiver.until(() => receiver.deliveries.length >= 1, 'the full batch, long before its delay');
    await sleep(300);
    assert.deepEqual(
      receiver.deliveries.map((delivery) => delivery.events.length),
      [10],
      'the eleventh waits for its batch to fill or its delay to pass',
    );
    for (const stream of streams) stream.close();

    receiver.deliveries.length = 0;
    const lone = await hubWith({ batchDelayMs: 400 });
    const stream = await lone.subscribe('topic=lone');
    await stream.untilConnected();
    const connected = stream.events[0]?.at ?? 0;
    // The first hub's closes may arrive meanwhile: the lone hub's delivery is the one from its node.
    const fromLone = () =>
      receiver.deliveries.find((delivery) => delivery.events.some((n) => n.node === lone.herald.nodeId));
    await receiver.until(() => fromLone() !== undefined, 'the lone notice');
    const waited = (fromLone()?.at ?? 0) - connected;
    // Queued as the stream opened, a little before it heard herald.connected.
    assert.ok(waited >= 250, `sent ${Math.round(waited)} ms after herald.connected: it should wait ~400 ms`);
    assert.ok(waited < 400 + 2_000, `sent ${Math.round(waited)} ms after herald.connected`);
    stream.close();
  });

  test('at shutdown, the closes of the streams still open are sent', async () => {
    receiver.deliveries.length = 0;
    receiver.behave = (_delivery, response) => response.writeHead(204).end();
    const hub = await startHub({ webhook: { url: receiver.url, secret: SECRET } });
    const stream = await hub.subscribe('topic=a');
    await stream.untilConnected();
    await hub.close();
    const closed = receiver.notices.find((notice) => notice.type === 'stream.closed');
    assert.equal(closed?.type === 'stream.closed' && closed.reason, 'shutdown');
  });
});
