import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'redis';

/** The machine's Redis (`.ci/run` starts it when it is down). */
export const REDIS_URL = process.env.HERALD_TEST_REDIS ?? 'redis://127.0.0.1:6379/0';
const REDIS_SERVER = process.env.HERALD_REDIS_SERVER ?? '/usr/bin/redis-server';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A redis-server of the test's own, on a free loopback port, that it may kill and restart. */
export interface PrivateRedis {
  readonly port: number;
  readonly url: string;
  /** SIGKILL, and wait until the process is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port (with `persistent`, on the same data) and waits until it answers. */
  restart(): Promise<void>;
  /** Kills it and removes its files; safe to call twice. */
  stop(): Promise<void>;
}

/** Every child started here, killed if the test process exits without stopping them. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/**
 * Starts a private redis-server. Without `persistent` nothing is written to disk; with it, an
 * append-only file fsynced on every write keeps the data across `kill()` + `restart()`. `args`
 * are passed on as they are (e.g. `['--rename-command', 'CONFIG', '']`).
 */
export async function startPrivateRedis(
  options: { persistent?: boolean; args?: readonly string[] } = {},
): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'herald-redis-'));
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--dir',
    dir,
    '--loglevel',
    'warning',
  ];
  args.push(
    ...(options.persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
    ...(options.args ?? []),
  );
  let child: ChildProcess | undefined;
  let output = '';

  const launch = async () => {
    const started = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(started);
    started.once('exit', () => children.delete(started));
    started.stdout?.on('data', (chunk: Buffer) => {
      output += chunk;
    });
    started.stderr?.on('data', (chunk: Buffer) => {
      output += chunk;
    });
    started.once('error', (error) => {
      output += `\n${error.message}`;
    });
    child = started;
    await waitForPong(port, 10_000, () => output);
  };

  const kill = async () => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = new Promise((resolve) => {
      running.once('exit', resolve);
      timer = setTimeout(resolve, 5000);
    });
    running.kill('SIGKILL');
    await exited;
    clearTimeout(timer);
  };

  await launch().catch(async (error: unknown) => {
    await kill();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  });
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    kill,
    async restart() {
      await kill();
      await launch();
    },
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A TCP relay in front of a Redis, to take one node's link down (and only that node's) while the
 * server and every other node carry on.
 */
export interface Relay {
  readonly url: string;
  /** Drops every connection through it and refuses new ones. */
  cut(): Promise<void>;
  /** Accepts connections again, on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startRelay(targetPort: number): Promise<Relay> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const listen = async () => {
    const listening = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject);
      listening.listen(port, '127.0.0.1', () => resolve());
    });
    server = listening;
  };
  const cut = async () => {
    const listening = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    if (listening !== undefined) await new Promise((resolve) => listening.close(resolve));
  };
  await listen();
  return { url: `redis://127.0.0.1:${port}/0`, cut, restore: listen, close: cut };
}

/** Fails with a message that says what to do when the machine's Redis is not there. */
export async function requireRedis(url = REDIS_URL): Promise<void> {
  const client = createClient({ url, socket: { connectTimeout: 2000, reconnectStrategy: false } });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    throw new Error(
      `these tests need Redis at ${url} (set HERALD_TEST_REDIS for another; .ci/run starts it): ` +
        `${error instanceof Error ? error.message : String(error)}`,
    );
  } finally {
    if (client.isOpen) client.destroy();
  }
}

/** Deletes every key under `<prefix>:` (SCAN, never KEYS: the server may be shared). */
export async function deletePrefix(url: string, prefix: string): Promise<void> {
  const client = createClient({ url, socket: { connectTimeout: 2000, reconnectStrategy: false } });
  client.on('error', () => {});
  await client.connect();
  try {
    for await (const keys of client.scanIterator({ MATCH: `${prefix}:*`, COUNT: 1000 })) {
      if (keys.length > 0) await client.unlink(keys);
    }
  } finally {
    client.destroy();
  }
}

/** A plain client for a test's own checks (XLEN, CLIENT KILL…); the caller destroys it. */
export async function adminClient(url: string) {
  const client = createClient({ url, RESP: 2, socket: { connectTimeout: 2000, reconnectStrategy: false } });
  client.on('error', () => {});
  await client.connect();
  return client;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}

/** Until the server answers PING with PONG (not -LOADING while it replays its append-only file). */
async function waitForPong(port: number, timeoutMs: number, output: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let data = '';
      const timer = setTimeout(() => socket.destroy(), 500);
      socket.on('connect', () => socket.write('PING\r\n'));
      socket.on('data', (chunk) => {
        data += chunk;
        if (data.includes('\r\n')) socket.end();
      });
      socket.on('error', () => {});
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(data);
      });
    });
    if (answer.startsWith('+PONG')) return;
    await sleep(50);
  }
  throw new Error(`redis-server on port ${port} did not answer within ${timeoutMs} ms:\n${output()}`);
}
