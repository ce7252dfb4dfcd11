import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createClient } from '../../src/client/index.ts';
import { startHub, type TestHub } from '../helpers/server.ts';
import { record, untilStatus } from './helpers.ts';

const CHILD = fileURLToPath(new URL('./fixtures/one-event-then-close.ts', import.meta.url));

/** Runs the child against `url`; publishes once it is open; resolves with its output and how long it took to exit after closing. */
function runChild(hub: TestHub, url: string, mode: string) {
  return new Promise<{ output: string; code: number | null; exitAfterCloseMs: number }>((resolve, reject) => {
    // Not a test process itself: without the runner's variable, its stdout is a plain pipe.
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, [CHILD, url, mode], { stdio: ['ignore', 'pipe', 'inherit'], env });
    let output = '';
    // Generous: a child process that compiles its TypeScript as it starts, on a busy machine.
    const kill = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the child did not exit within 60 s; output: ${output}`));
    }, 60_000);
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk;
      if (output.includes('open') && !output.includes('event')) {
        // Published once, when the child is open (and again if the first raced its connection).
        void hub.publish({ topic: 'exit', data: 'bye' });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(kill);
      // The child writes when it called close(), by the wall clock both processes share.
      const closedAt = Number(/closed at (\d+)/.exec(output)?.[1]);
      resolve({ output, code, exitAfterCloseMs: Date.now() - closedAt });
    });
  });
}

describe('close()', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  test('a Node process with a streaming client exits by itself after close()', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    const { output, code, exitAfterCloseMs } = await runChild(hub, hub.url, 'stream');
    assert.equal(code, 0);
    assert.match(output, /open stream\nevent "bye"\nclosed at \d+\n/);
    assert.ok(exitAfterCloseMs < 3000, `exited ${exitAfterCloseMs} ms after close()`);
  });

  test('a Node process with a long-polling client exits by itself after close()', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    // A "proxy" that answers streams with text/plain and sends polls on to the hub.
    const proxy = createServer(async (req, res) => {
      if (req.url?.startsWith('/v1/events?')) {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('buffered');
        return;
      }
      const answer = await fetch(`${hub.url}${req.url}`);
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(await answer.text());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => {
      proxy.closeAllConnections();
      return new Promise((resolve) => proxy.close(resolve));
    });
    const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const { output, code, exitAfterCloseMs } = await runChild(hub, url, 'poll');
    assert.equal(code, 0);
    assert.match(output, /open poll\nevent "bye"\nclosed at \d+\n/);
    assert.ok(exitAfterCloseMs < 3000, `exited ${exitAfterCloseMs} ms after close()`);
  });

  test('after close(): status closed, no handler called, the hub sees the stream go', async () => {
    const hub = await startHub();
    cleanups.push(() => hub.close());
    const client = createClient({ url: hub.url, topics: ['t'], store: null });
    const seen = record(client);
    await untilStatus(client, 'open');
    assert.equal((await hub.herald.stats()).connections.total, 1);
    client.close();
    client.close(); // twice is fine
    assert.equal(client.status, 'closed');
    assert.equal(client.connectionId, undefined);
    await hub.publish({ topic: 't', data: 'after' });
    const deadline = Date.now() + 2000;
    while ((await hub.herald.stats()).connections.total !== 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal((await hub.herald.stats()).connections.total, 0);
    assert.deepEqual(seen.messages, []);
    assert.deepEqual(seen.statuses.at(-1), { status: 'closed', reason: 'closed by the application' });
    await assert.rejects(client.subscribe('x'), /closed/);
  });
});
