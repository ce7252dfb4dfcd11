import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';

/** The NATS JetStream that `.ci/run` keeps running for the test suite (`HERALD_TEST_NATS` to point elsewhere). */
export const SHARED_NATS_URL = process.env.HERALD_TEST_NATS ?? 'nats://127.0.0.1:4222';

const BINARY =
  process.env.NATS_SERVER ?? (existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A connection to a NATS server with JetStream, or an error that says what to do. */
export async function connectJetStream(url: string): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: url, timeout: 2000, reconnect: false });
  } catch (error) {
    throw new Error(
      `NATS is not reachable at ${url} (${(error as Error).message}); ` +
        'start it with .ci/run, or `nats-server -a 127.0.0.1 -p 4222 -js`',
    );
  }
  try {
    await jetstreamManager(nc, { timeout: 2000 });
  } catch (error) {
    await nc.close();
    throw new Error(
      `NATS at ${url} answers but JetStream is off (${(error as Error).message}); run it with -js`,
    );
  }
  return nc;
}

/** A nats-server of this test's own, with JetStream and a store that survives its restarts. */
export interface PrivateNats {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** SIGKILL, as a crash would: waits for the process to be gone. */
  kill(): Promise<void>;
  /** (Re)starts it on the same port and store; resolves once JetStream answers. */
  start(): Promise<void>;
  /**
   * SIGKILL, then starts it again on the same port with an empty store: as a server whose
   * streams were in memory, or whose disk was lost.
   */
  restartEmpty(): Promise<void>;
  /** Kills it and removes its store. */
  dispose(): Promise<void>;
}

const running = new Set<ChildProcess>();
// Whatever happens to the test, no nats-server outlives it.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export async function startPrivateNats(): Promise<PrivateNats> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), 'herald-nats-'));
  const url = `nats://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let output = '';

  const kill = async () => {
    const current = child;
    child = undefined;
    if (current === undefined || current.exitCode !== null || current.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => current.once('exit', () => resolve()));
    current.kill('SIGKILL');
    await Promise.race([exited, sleep(5000)]);
    running.delete(current);
  };

  const start = async () => {
    await kill();
    output = '';
    const spawned = spawn(BINARY, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = spawned;
    running.add(spawned);
    spawned.stdout?.on('data', (chunk: Buffer) => {
      output += chunk;
    });
    spawned.stderr?.on('data', (chunk: Buffer) => {
      output += chunk;
    });
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (spawned.exitCode !== null) throw new Error(`nats-server exited (${spawned.exitCode}):\n${output}`);
      try {
        const nc = await connect({ servers: url, timeout: 1000, reconnect: false });
        try {
          await jetstreamManager(nc, { timeout: 1000 });
          return;
        } finally {
          await nc.close();
        }
      } catch (error) {
        if (Date.now() > deadline) {
          await kill();
          throw new Error(`nats-server on ${url} not ready in 15 s: ${(error as Error).message}\n${output}`);
        }
        await sleep(50);
      }
    }
  };

  await start();
  return {
    url,
    port,
    storeDir,
    kill,
    start,
    async restartEmpty() {
      await kill();
      rmSync(storeDir, { recursive: true, force: true });
      mkdirSync(storeDir, { recursive: true });
      await start();
    },
    async dispose() {
      await kill();
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

/** A TCP proxy in front of a server, to cut a client's connection while the server lives on. */
export interface TcpProxy {
  readonly url: string;
  /** Drops every connection and refuses new ones until `restore()`. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let open = true;
  const server: Server = createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = netConnect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    url: `nats://127.0.0.1:${address.port}`,
    cut() {
      open = false;
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    restore() {
      open = true;
    },
    async close() {
      open = false;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}
