import { createHash, randomUUID } from 'node:crypto';
import type { Backend } from '../backends/backend.ts';
import { loadOptionalPeer } from '../backends/optional-peer.ts';
import { BACKENDS } from '../backends/registry.ts';
import type { BridgePublisher } from './publisher.ts';
import { type BridgeCounters, Pump } from './pump.ts';
import type { BridgeError, BridgeSource, RunningSource, SourceSettings } from './source.ts';
import { type BridgeSpec, parseBridgeSpec } from './spec.ts';

export { captures, mapMessage } from './map.ts';
export type { BridgePublisher } from './publisher.ts';
export type { BridgeCounters } from './pump.ts';
export { BridgeError } from './source.ts';
export {
  BRIDGE_SYNTAX,
  type BridgeSpec,
  type FieldRef,
  formatBridgeSpec,
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
 * Each backend with a bridge source (see backends/registry.ts) feeds the specs of its kind.
 * Resolves once every bridge is subscribed; rejects (having closed what it opened) when a spec
 * is invalid or a source cannot be reached within `connectTimeoutMs`. Afterwards nothing a
 * message or a connection does throws: it is counted and reported through `onError`, and lost
 * connections are re-established by themselves.
 *
 * Several Herald nodes may run the same bridges: each message still becomes one event (NATS:
 * queue groups; Redis: a lease, see backends/redis/bridge.ts). Both sources are at-most-once.
 */
export async function startBridges(
  herald: BridgePublisher,
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
  // One group per backend that has bridges, in registry order.
  const groups = BACKENDS.flatMap((backend) => {
    const specsOf = parsed.filter((spec) => spec.kind === backend.kind);
    return specsOf.length === 0 || backend.bridge === undefined
      ? []
      : [{ backend, source: backend.bridge, specs: specsOf }];
  });
  for (const { backend, specs: specsOf } of groups) {
    if (urlOf(options, backend) === undefined) {
      throw new Error(
        `bridge "${specsOf[0]?.text}" needs a ${backend.title} URL (the ${backend.kind}Url option)`,
      );
    }
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
  const sources = groups.map(({ backend, source, specs: specsOf }) => ({
    backend,
    source,
    pumps: specsOf.map((spec) => ({ pump: new Pump(herald, spec, pumpOptions), hash: specHash(spec) })),
  }));

  // Client libraries load only for the sources in use (optional peer dependencies of herald).
  const started = await Promise.allSettled(
    sources.map(({ backend, source, pumps }) =>
      startSource(backend, source, pumps, {
        url: urlOf(options, backend) as string,
        nodeId,
        connectTimeoutMs: settings.connectTimeoutMs,
        report,
        leaseMs: settings.leaseMs,
        renewEveryMs: settings.renewEveryMs,
        leasePrefix: settings.leasePrefix,
        queueGroup: settings.queueGroup,
      }),
    ),
  );
  const failed = started.find((result) => result.status === 'rejected');
  if (failed !== undefined) {
    await Promise.all(
      started.map((result) => (result.status === 'fulfilled' ? result.value.close() : undefined)),
    );
    throw failed.reason;
  }
  const running = sources.map((group, i) => ({
    ...group,
    running: (started[i] as PromiseFulfilledResult<RunningSource>).value,
  }));

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        await Promise.all(running.map((group) => group.running.close()));
        await Promise.all(running.flatMap((group) => group.pumps.map(({ pump }) => pump.close())));
      })();
      return closing;
    },
    stats() {
      const bridges: BridgeStats[] = running.flatMap((group) => {
        const own = group.running.stats();
        return group.pumps.map(({ pump }, i) => ({
          ...figures(pump),
          connected: group.running.connected,
          ...own[i],
        }));
      });
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

/** Loads a backend's source (naming what to install when its client is missing) and starts it. */
async function startSource(
  backend: Backend,
  source: BridgeSource,
  pumps: readonly { readonly pump: Pump; readonly hash: string }[],
  settings: SourceSettings,
): Promise<RunningSource> {
  const start = await loadOptionalPeer(() => source.load(), `a ${backend.kind}: bridge`, source.packages);
  return start(
    pumps.map(({ pump, hash }) => ({ inlet: pump, hash })),
    settings,
  );
}

/** The backend URL a source of `backend` subscribes to: the `<kind>Url` option (`redisUrl`). */
function urlOf(options: BridgeOptions, backend: Backend): string | undefined {
  const url = (options as Readonly<Record<string, unknown>>)[`${backend.kind}Url`];
  return typeof url === 'string' ? url : undefined;
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
