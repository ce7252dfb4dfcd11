import { createHash, randomUUID } from 'node:crypto';
import { loadOptionalPeer } from '../brokers/optional-peer.ts';
import type { Herald } from '../herald.ts';
import type { NatsBridge } from './nats-bridge.ts';
import { type BridgeCounters, type BridgeError, Pump } from './pump.ts';
import type { RedisBridge } from './redis-bridge.ts';
import { type BridgeSpec, parseBridgeSpec } from './spec.ts';

export { type BridgeCounters, BridgeError } from './pump.ts';
export {
  BRIDGE_SYNTAX,
  type BridgeSpec,
  captures,
  type FieldRef,
  formatBridgeSpec,
  mapMessage,
  parseBridgeSpec,
  type TemplatePart,
  type ValueRule,
} from './spec.ts';

export interface BridgeOptions {
  /** Where `redis:` bridges subscribe (and keep their leases). Required when there is one. */
  readonly redisUrl?: string;
  /** Where `nats:` bridges subscribe. Required when there is one. */
  readonly natsUrl?: string;
  /**
   * Told about every message that did not become an event (with the bridge's source, the
   * channel and the reason) and about lost connections. Never let it throw: what it throws is
   * ignored. Default: the Herald's own `onError`.
   */
  readonly onError?: (error: BridgeError, context: string) => void;
  /** This runner's name in Redis leases. Default: the Herald's node id and a random suffix, so two runners in one process differ. */
  readonly nodeId?: string;
  /** Redis lease lifetime, ms. Default 10 000: how long a crashed leader's bridge stays silent at most. */
  readonly leaseMs?: number;
  /** How often the Redis lease is renewed or sought, ms. Default 3 000; must be under half of `leaseMs`. */
  readonly renewEveryMs?: number;
  /** How long the first connection to Redis or NATS may take before `startBridges` fails, ms. Default 5 000. */
  readonly connectTimeoutMs?: number;
  /** Messages per bridge waiting for Herald (while its broker is down), at most. Default 10 000. */
  readonly maxPending?: number;
  /** Redis lease keys are this and the spec's hash. Default `herald:bridge:`. */
  readonly leasePrefix?: string;
  /** NATS queue groups are this, `-` and the spec's hash. Default `herald-bridge`. */
  readonly queueGroup?: string;
}

export interface BridgeStats extends BridgeCounters {
  /** The spec in canonical form. */
  readonly spec: string;
  readonly source: string;
  /** Mapped messages waiting for Herald. */
  readonly pending: number;
  /** Whether the connection to the source is up. */
  readonly connected: boolean;
  /** Redis: whether this runner holds the bridge's lease (only the holder publishes). */
  readonly leader?: boolean;
  /** Redis: messages seen while another runner held the lease, and so left to it. */
  readonly standby?: number;
}

export interface BridgesStats extends BridgeCounters {
  readonly bridges: readonly BridgeStats[];
}

export interface Bridges {
  /** Stops listening, releases Redis leases, and waits briefly for events under way. */
  close(): Promise<void>;
  /** Totals over every bridge, and each bridge's own figures. */
  stats(): BridgesStats;
}

const DEFAULTS = {
  leaseMs: 10_000,
  renewEveryMs: 3_000,
  connectTimeoutMs: 5_000,
  maxPending: 10_000,
  leasePrefix: 'herald:bridge:',
  queueGroup: 'herald-bridge',
};

/**
 * Starts one bridge per spec (`--bridge` strings, or parsed specs): every message on the source
 * becomes an event through `herald.publish`, with the same validation and log as any publish.
 * Resolves once every bridge is subscribed; rejects (having closed what it opened) when a spec
 * is invalid or a source cannot be reached within `connectTimeoutMs`. Afterwards nothing a
 * message or a connection does throws: it is counted and reported through `onError`, and lost
 * connections are re-established by themselves.
 *
 * Several Herald nodes may run the same bridges: each message still becomes one event (NATS:
 * queue groups; Redis: a lease, see redis-bridge.ts). Both sources are at-most-once.
 */
export async function startBridges(
  herald: Herald,
  specs: readonly (string | BridgeSpec)[],
  options: BridgeOptions = {},
): Promise<Bridges> {
  const settings = { ...DEFAULTS, ...definedOnly(options) };
  const parsed = specs.map((spec) => (typeof spec === 'string' ? parseBridgeSpec(spec) : spec));
  const seen = new Set<string>();
  for (const spec of parsed) {
    if (seen.has(spec.text)) throw new Error(`bridge "${spec.text}" is given twice`);
    seen.add(spec.text);
  }
  positive(settings.leaseMs, 'leaseMs');
  positive(settings.renewEveryMs, 'renewEveryMs');
  positive(settings.connectTimeoutMs, 'connectTimeoutMs');
  positive(settings.maxPending, 'maxPending');
  if (settings.renewEveryMs * 2 > settings.leaseMs) {
    throw new RangeError(
      `renewEveryMs (${settings.renewEveryMs}) must be at most half of leaseMs (${settings.leaseMs}), so that one missed renewal does not lose the lease`,
    );
  }
  const redisSpecs = parsed.filter((spec) => spec.kind === 'redis');
  const natsSpecs = parsed.filter((spec) => spec.kind === 'nats');
  if (redisSpecs.length > 0 && options.redisUrl === undefined) {
    throw new Error(`bridge "${redisSpecs[0]?.text}" needs a Redis URL (the redisUrl option)`);
  }
  if (natsSpecs.length > 0 && options.natsUrl === undefined) {
    throw new Error(`bridge "${natsSpecs[0]?.text}" needs a NATS URL (the natsUrl option)`);
  }

  const onError = options.onError ?? herald.onError;
  const report = (error: BridgeError): void => {
    try {
      onError(error, `bridge ${error.source}`);
    } catch {
      // A failing error handler must not take a bridge down.
    }
  };
  const nodeId = options.nodeId ?? `${herald.nodeId}-${randomUUID().slice(0, 8)}`;
  const pumpOptions = {
    maxPending: settings.maxPending,
    maxBatch: Math.max(1, Math.min(100, herald.hub.options.maxBatch)),
    report,
  };
  const withPumps = (list: BridgeSpec[]) =>
    list.map((spec) => ({ pump: new Pump(herald, spec, pumpOptions), hash: specHash(spec) }));
  const redisPumps = withPumps(redisSpecs);
  const natsPumps = withPumps(natsSpecs);

  // Client libraries load only for the sources in use (optional peer dependencies of herald).
  const [redis, nats] = await Promise.allSettled([
    redisPumps.length === 0
      ? undefined
      : loadOptionalPeer(() => import('./redis-bridge.ts'), 'a redis: bridge', ['redis']).then(
          ({ RedisBridge }) =>
            RedisBridge.start(redisPumps, {
              url: options.redisUrl as string,
              nodeId,
              leaseMs: settings.leaseMs,
              renewEveryMs: settings.renewEveryMs,
              connectTimeoutMs: settings.connectTimeoutMs,
              leasePrefix: settings.leasePrefix,
              report,
            }),
        ),
    natsPumps.length === 0
      ? undefined
      : loadOptionalPeer(() => import('./nats-bridge.ts'), 'a nats: bridge', [
          '@nats-io/transport-node',
        ]).then(({ NatsBridge }) =>
          NatsBridge.start(natsPumps, {
            url: options.natsUrl as string,
            nodeId,
            queueGroup: settings.queueGroup,
            connectTimeoutMs: settings.connectTimeoutMs,
            report,
          }),
        ),
  ]);
  if (redis.status === 'rejected' || nats.status === 'rejected') {
    await Promise.all([
      redis.status === 'fulfilled' ? redis.value?.close() : undefined,
      nats.status === 'fulfilled' ? nats.value?.close() : undefined,
    ]);
    throw redis.status === 'rejected' ? redis.reason : (nats as PromiseRejectedResult).reason;
  }
  const redisBridge: RedisBridge | undefined = redis.value;
  const natsBridge: NatsBridge | undefined = nats.value;

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        await Promise.all([redisBridge?.close(), natsBridge?.close()]);
        await Promise.all([...redisPumps, ...natsPumps].map(({ pump }) => pump.close()));
      })();
      return closing;
    },
    stats() {
      const leases = redisBridge?.stats() ?? [];
      const bridges: BridgeStats[] = [
        ...redisPumps.map(({ pump }, i) => ({
          ...figures(pump),
          connected: redisBridge?.connected ?? false,
          leader: leases[i]?.leader ?? false,
          standby: leases[i]?.standby ?? 0,
        })),
        ...natsPumps.map(({ pump }) => ({ ...figures(pump), connected: natsBridge?.connected ?? false })),
      ];
      const total = (key: keyof BridgeCounters) => bridges.reduce((sum, bridge) => sum + bridge[key], 0);
      return {
        received: total('received'),
        published: total('published'),
        rejected: total('rejected'),
        bridges,
      };
    },
  };
}

/** A bridge's identity across nodes: its canonical spec, hashed (lease key, queue group). */
export function specHash(spec: BridgeSpec): string {
  return createHash('sha256').update(spec.text).digest('hex').slice(0, 16);
}

function figures(pump: Pump) {
  return {
    spec: pump.spec.text,
    source: pump.spec.source,
    received: pump.counters.received,
    published: pump.counters.published,
    rejected: pump.counters.rejected,
    pending: pump.pending,
  };
}

function positive(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new RangeError(`${name} must be a positive whole number`);
}

function definedOnly<T extends object>(object: T): Partial<T> {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as Partial<T>;
}
