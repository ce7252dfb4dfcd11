import { fileURLToPath } from 'node:url';
import { BROKERS, type BrokerName } from './brokers.ts';
import { nchan } from './peers/nchan.ts';
import { betterSse, seed } from './peers/node-peer.ts';
import { processTree } from './proc-stats.ts';
import { onInterrupt } from './processes.ts';
import type { ProtocolName } from './protocols.ts';
import { type ServerProcess, startServerProcess } from './server-process.ts';

/**
 * Server settings a scenario may need. A target applies the tuning ones it has and ignores the
 * others; `broker` and `nodes` change what is measured, so a target that cannot honour them
 * refuses to start.
 */
export interface TargetOptions {
  /** Interval of keep-alive comments on quiet streams. */
  readonly heartbeatMs?: number;
  /** Events kept for replay. */
  readonly historySize?: number;
  /** The log the nodes share. Default: memory (one process, nothing shared). */
  readonly broker?: BrokerName;
  /** Server processes, all on `broker`, forming one hub. Default 1. */
  readonly nodes?: number;
  /**
   * Worker processes of one node sharing its port (nginx `worker_processes`): a process here may
   * hold at most 20 000 descriptors. Default 1; a single-process peer refuses more.
   */
  readonly workers?: number;
  /**
   * A file each node appends its event-loop delays to (`loop-monitor.ts`, preloaded with
   * `--import`), for the scenarios that measure stalls (S7). Herald only; other peers ignore it.
   */
  readonly loopMonitorFile?: string;
  /** A file each node appends its GC pauses to (`gc-monitor.ts`), for S4. Herald only. */
  readonly gcMonitorFile?: string;
  /** `--compression` (S9): off, on or a list of codings. Herald only; other peers ignore it. */
  readonly compression?: string;
  /** `--auth-url` (S10): the app endpoint asked who a stream comes from. Herald only; other peers ignore it. */
  readonly authUrl?: string;
  /** `--webhook-url` and `--webhook-secret` (S10): the app endpoint told of every stream. Herald only. */
  readonly webhook?: { readonly url: string; readonly secret: string };
}

/** Where a node listens. */
export interface Endpoint {
  /** 127.0.0.1. */
  readonly host: string;
  readonly port: number;
}

/** A peer server, started fresh for one measurement: one node, or several on a shared broker. */
export interface RunningTarget {
  readonly name: string;
  /** Every node, in the order they started. */
  readonly nodes: readonly Endpoint[];
  /** The node the publisher sends to: the first. */
  readonly publishTo: Endpoint;
  /**
   * The node the subscribers connect to: the last, so that with several nodes every event goes
   * through the broker to reach them; with one node, the same as `publishTo`.
   */
  readonly subscribeTo: Endpoint;
  /** How the load generators subscribe and publish. */
  readonly protocol: ProtocolName;
  /** The processes whose CPU time and memory are the server's (every node; nginx: master and workers). */
  readonly pids: readonly number[];
  /** The broker the nodes share. */
  readonly broker: BrokerName;
  /**
   * The shared broker's server processes (redis-server, nats-server), measured apart: their CPU
   * is the hub's cost too, but also whatever else uses that server meanwhile. Empty on memory.
   */
  readonly brokerPids: readonly number[];
  /** Why a node stopped running, or undefined while they all run. */
  exitReason(): string | undefined;
  /** The nodes' last lines of output. */
  output(): string;
  /** Stops every node, then removes the log from the broker; rejects if that cleanup failed. */
  stop(): Promise<void>;
}

export interface Target {
  readonly name: string;
  readonly description: string;
  start(options: TargetOptions): Promise<RunningTarget>;
}

const REPO = fileURLToPath(new URL('..', import.meta.url));

/**
 * Where each Herald node writes a V8 CPU profile when it exits (`--cpu-prof`, for `run.ts
 * --cpu-prof <dir>`), or undefined for none. Profiling costs the server some CPU: figures of a
 * profiled run are for finding where the time goes, not for the table.
 */
let profileDir: string | undefined;

export function profileHeraldInto(dir: string | undefined): void {
  profileDir = dir;
}
const LOOP_MONITOR = new URL('./loop-monitor.ts', import.meta.url).href;
const GC_MONITOR = new URL('./gc-monitor.ts', import.meta.url).href;

/**
 * Herald's standalone server, `herald serve`, from source on the Node running the benchmark: one
 * node on the memory broker, or several nodes of one hub on Redis or NATS, on a log of their own
 * that is removed afterwards.
 */
export const herald: Target = {
  name: 'herald',
  description: 'Herald `serve` (node:http), run from source; memory broker, or nodes on Redis / NATS',
  async start(options) {
    const broker = BROKERS[options.broker ?? 'memory'];
    const count = options.nodes ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > broker.maxNodes) {
      throw new Error(
        `herald cannot run ${count} nodes on the ${broker.name} broker (at most ${broker.maxNodes})`,
      );
    }
    // Before anything starts: a broker that is not running fails the case with a clear message.
    const brokerPids = broker.pids();
    // Every load generator connects from one address: per-IP and per-publisher limits would
    // measure themselves, not the hub.
    const args = [
      'src/server/cli.ts',
      'serve',
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--ip-connection-rate',
      '0',
      '--publish-rate',
      '0',
      // A line per stream open and close is the default (info); Nchan runs with access_log off.
      '--log-level',
      'warn',
    ];
    const stream = broker.name === 'memory' ? undefined : broker.newStream();
    if (stream !== undefined) args.push('--broker', broker.url, '--stream', stream);
    if (options.heartbeatMs !== undefined) args.push('--heartbeat', `${options.heartbeatMs}ms`);
    if (options.historySize !== undefined) args.push('--history-size', String(options.historySize));
    if (options.compression !== undefined) args.push('--compression', options.compression);
    if (options.authUrl !== undefined) args.push('--auth-url', options.authUrl);
    if (options.webhook !== undefined)
      args.push('--webhook-url', options.webhook.url, '--webhook-secret', options.webhook.secret);
    const workers = options.workers ?? 1;
    if (workers !== 1) args.push('--workers', String(workers));

    const drop = async () => {
      if (stream !== undefined) await broker.drop(stream);
    };
    const forgetDrop = onInterrupt(drop);
    const servers: ServerProcess[] = [];
    let pids: number[];
    const stop = async () => {
      await Promise.all(servers.map((server) => server.stop()));
      try {
        await drop();
      } catch (error) {
        throw new Error(
          `could not remove the log ${stream} from ${broker.name}: ${error instanceof Error ? error.message : error}`,
        );
      } finally {
        forgetDrop();
      }
    };
    try {
      // One after the other: the first node creates the log (a JetStream stream), the others join it.
      for (let i = 0; i < count; i++) {
        servers.push(
          await startServerProcess({
            name: count === 1 ? 'herald' : `herald node ${i + 1}`,
            command: process.execPath,
            args: [
              ...process.execArgv,
              ...(profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`]),
              ...(options.loopMonitorFile === undefined ? [] : ['--import', LOOP_MONITOR]),
              ...(options.gcMonitorFile === undefined ? [] : ['--import', GC_MONITOR]),
              ...args,
            ],
            cwd: REPO,
            // Its own HERALD_* settings would make runs incomparable.
            env: {
              ...Object.fromEntries(
                Object.entries(process.env).filter(
                  ([name]) =>
                    !name.startsWith('HERALD_') && name !== 'BENCH_LOOP_FILE' && name !== 'BENCH_GC_FILE',
                ),
              ),
              ...(options.loopMonitorFile === undefined ? {} : { BENCH_LOOP_FILE: options.loopMonitorFile }),
              ...(options.gcMonitorFile === undefined ? {} : { BENCH_GC_FILE: options.gcMonitorFile }),
            },
            ready: /listening on (http:\/\/\S+)/,
          }),
        );
      }
      pids = servers.map((server) => {
        if (server.child.pid === undefined) throw new Error('herald started without a pid');
        return server.child.pid;
      });
    } catch (error) {
      await stop().catch(() => {});
      if (workers === 1) throw error;
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`herald serve --workers ${workers} failed (a Herald without --workers?): ${message}`);
    }
    const nodes = servers.map((server) => ({ host: server.url.hostname, port: Number(server.url.port) }));
    const first = nodes[0];
    const last = nodes[nodes.length - 1];
    if (first === undefined || last === undefined) throw new Error('herald started no node');
    return {
      name: 'herald',
      nodes,
      publishTo: first,
      subscribeTo: last,
      protocol: 'herald',
      // Workers fork after the node reports listening, and are the server as much as it is.
      get pids() {
        return workers === 1 ? pids : pids.flatMap(processTree);
      },
      broker: broker.name,
      brokerPids,
      exitReason: () => servers.map((server) => server.exitReason()).find((reason) => reason !== undefined),
      output: () =>
        servers.length === 1
          ? (servers[0]?.output() ?? '')
          : servers.map((server, i) => `[node ${i + 1}]\n${server.output()}`).join('\n'),
      stop,
    };
  },
};

/** Every peer the benchmark knows, by name (`--target`). */
export const TARGETS: Readonly<Record<string, Target>> = { herald, seed, 'better-sse': betterSse, nchan };
