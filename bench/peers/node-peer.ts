/**
 * A peer that is one Node script under bench/peers/ (the seed-style server, better-sse): started
 * fresh on the Node running the benchmark, one process on 127.0.0.1, nothing shared.
 */
import { fileURLToPath } from 'node:url';
import type { ProtocolName } from '../protocols.ts';
import { NotRun } from '../scenario.ts';
import { startServerProcess } from '../server-process.ts';
import type { RunningTarget, Target } from '../targets.ts';

export interface NodePeer {
  readonly name: string;
  readonly description: string;
  /** File name under bench/peers/. */
  readonly script: string;
  readonly protocol: ProtocolName;
}

export function nodePeerTarget(peer: NodePeer): Target {
  const script = fileURLToPath(new URL(`./${peer.script}`, import.meta.url));
  return {
    name: peer.name,
    description: peer.description,
    async start(options): Promise<RunningTarget> {
      if ((options.broker ?? 'memory') !== 'memory' || (options.nodes ?? 1) !== 1) {
        throw new NotRun(`${peer.name} is one process with an in-memory bus: no broker, no nodes`);
      }
      if ((options.workers ?? 1) !== 1) {
        throw new NotRun(`${peer.name} is one process: it cannot spread over ${options.workers} workers`);
      }
      const args = [...process.execArgv, script, '--port', '0'];
      if (options.heartbeatMs !== undefined) args.push('--heartbeat-ms', String(options.heartbeatMs));
      const server = await startServerProcess({
        name: peer.name,
        command: process.execPath,
        args,
        ready: /listening on (http:\/\/\S+)/,
      });
      const pid = server.child.pid;
      if (pid === undefined) {
        await server.stop();
        throw new Error(`${peer.name} started without a pid`);
      }
      const endpoint = { host: server.url.hostname, port: Number(server.url.port) };
      return {
        name: peer.name,
        nodes: [endpoint],
        publishTo: endpoint,
        subscribeTo: endpoint,
        protocol: peer.protocol,
        pids: [pid],
        broker: 'memory',
        brokerPids: [],
        exitReason: () => server.exitReason(),
        output: () => server.output(),
        stop: () => server.stop(),
      };
    },
  };
}

export const seed = nodePeerTarget({
  name: 'seed',
  description:
    'hand-written Node SSE as in the seeds (node:http, EventEmitter bus, res.write per listener per event)',
  script: 'seed-server.ts',
  protocol: 'seed',
});

export const betterSse = nodePeerTarget({
  name: 'better-sse',
  description: 'better-sse 0.16 (node:http, a Channel per topic, channel.broadcast)',
  script: 'better-sse-server.ts',
  protocol: 'better-sse',
});
