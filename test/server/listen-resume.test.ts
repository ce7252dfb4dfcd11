import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { type HubProcess, killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { deletePrefix, REDIS_URL } from '../helpers/redis-server.ts';
import { CLI, cliEnv } from './run-cli.ts';

/**
 * README, CLI: "`listen` prints one JSON line per event (`{"id","type","data"}`) and reconnects
 * with `Last-Event-ID` after a disconnect". Held with the real CLI against real hubs: whatever
 * ended the stream, every event is printed once, in log order, none missing and none repeated.
 */

interface Listener {
  readonly child: ChildProcess;
  /** The JSON lines printed so far. */
  lines(): { id: string; type: string; data: unknown }[];
  stderr(): string;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
}

const listeners = new Set<ChildProcess>();

after(async () => {
  for (const child of listeners)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await killAllHubs();
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `herald listen --url <url> --topic <topic> --count <count>` as its own process. */
function listen(url: string, topic: string, count: number): Listener {
  const child = spawn(
    process.execPath,
    [CLI, 'listen', '--url', url, '--topic', topic, '--count', String(count)],
    {
      env: cliEnv({}),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  listeners.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      listeners.delete(child);
      resolve(code);
    }),
  );
  return {
    child,
    lines: () =>
      stdout
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line)),
    stderr: () => stderr,
    exited,
  };
}

async function until(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(50);
  }
}

/** The listener's exit code, or 'still running' past the limit. */
async function exitCode(listener: Listener): Promise<number | null | string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('still running'), LISTEN_LIMIT_MS);
  });
  try {
    return await Promise.race([listener.exited, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** What /v1/stats says (loopback is admin in open development mode). */
async function stats(url: string): Promise<{
  connections: { total: number };
  events: { opened: number; replays: number; closed: Record<string, number> };
}> {
  return (await fetch(`${url}/v1/stats`)).json() as never;
}

/**
 * Until the listener's first stream is open (the hub counts it): it starts from now, so what is
 * published before is not its to see.
 */
async function untilStreaming(url: string, listener: Listener): Promise<void> {
  const deadline = Date.now() + LISTEN_LIMIT_MS;
  for (;;) {
    if ((await stats(url)).connections.total >= 1) return;
    if (listener.child.exitCode !== null) throw new Error(`listen exited: ${listener.stderr()}`);
    if (Date.now() > deadline) throw new Error(`listen did not connect: ${listener.stderr()}`);
    await sleep(100);
  }
}

/** Publishes one event and returns its id. */
async function publish(url: string, topic: string, data: unknown): Promise<string> {
  const response = await fetch(`${url}/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ topic, type: 'tick', data }),
  });
  const body = (await response.json()) as { id: string };
  assert.equal(response.status, 202, JSON.stringify(body));
  return body.id;
}

/** Generous: the hubs and the listener compile their TypeScript on a busy machine. */
const LISTEN_LIMIT_MS = 120_000;

describe('herald listen resumes after a disconnect', () => {
  test('streams ended by the hub (--max-lifetime): every event once, in order', async () => {
    const hub = await spawnHub(['--max-lifetime', '2s']);
    const topic = 'resume/lifetime';
    const count = 24;
    const listener = listen(hub.url, topic, count);
    await untilStreaming(hub.url, listener);
    const sent: { id: string; type: string; data: unknown }[] = [];
    // Spread over several lifetimes, so the stream ends and is resumed a few times in between.
    for (let n = 0; n < count; n++) {
      await sleep(350);
      sent.push({ id: await publish(hub.url, topic, { n }), type: 'tick', data: { n } });
    }
    const code = await exitCode(listener);
    assert.equal(code, 0, `listen exits after --count events; printed ${listener.lines().length}`);
    assert.deepEqual(listener.lines(), sent, 'every event once, in log order');
    assert.doesNotMatch(listener.stderr(), /gap \{/, 'no gap');
    const { events } = await stats(hub.url);
    assert.ok((events.closed.lifetime ?? 0) >= 2, `the hub ended the stream ${events.closed.lifetime} times`);
    assert.ok(events.replays >= 2, `and the listener resumed with a replay ${events.replays} times`);
  });

  test('a hub killed and started again on the same port: what was published meanwhile arrives, once', async () => {
    const stream = `test_listen_${process.pid}_${Date.now()}`;
    after(() => deletePrefix(REDIS_URL, stream));
    const broker = ['--broker', REDIS_URL, '--stream', stream];
    const topic = 'resume/restart';
    const first: HubProcess = await spawnHub(broker);
    const port = new URL(first.url).port;
    const listener = listen(first.url, topic, 12);
    const sent: { id: string; type: string; data: unknown }[] = [];
    const send = async (url: string, n: number) => {
      sent.push({ id: await publish(url, topic, { n }), type: 'tick', data: { n } });
    };

    await untilStreaming(first.url, listener);
    for (let n = 0; n < 4; n++) await send(first.url, n);
    await until(() => listener.lines().length === 4, 'the first 4 events', LISTEN_LIMIT_MS);

    // No goodbye: the listener's stream breaks, and its reconnections are refused for a while.
    await first.kill();
    const other = await spawnHub(broker);
    for (let n = 4; n < 8; n++) await send(other.url, n);
    assert.equal(listener.lines().length, 4, 'nothing to hear while its hub is down');

    const again = await spawnHub(['--port', port, ...broker]);
    assert.equal(new URL(again.url).port, port, 'the same port');
    for (let n = 8; n < 12; n++) await send(again.url, n);

    const code = await exitCode(listener);
    assert.equal(code, 0, `listen exits after --count events; printed ${JSON.stringify(listener.lines())}`);
    assert.deepEqual(listener.lines(), sent, 'every event once, in log order, across the outage');
    assert.match(listener.stderr(), /herald: /, 'the interruption is told on stderr');
    assert.doesNotMatch(listener.stderr(), /gap \{/, 'no gap');
    assert.ok(
      (await stats(again.url)).events.replays >= 1,
      'it resumed with Last-Event-ID on the restarted hub',
    );
    await Promise.all([other.stop(), again.stop()]);
  });
});
