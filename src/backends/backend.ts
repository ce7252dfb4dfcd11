import type { BridgeSource } from '../bridges/source.ts';
import type { Broker } from '../core/log.ts';

/**
 * What a backend's broker is built from: the URL, the log's name, its history bounds and how many
 * latest values per key it keeps.
 */
export interface BrokerSettings {
  /** `memory`, `redis://host:port[/db]` (or `rediss://`), `nats://host:port[,host:port…]`. */
  readonly url: string;
  /** The log's name on the backend: Redis key prefix, JetStream stream name. Default `herald`. */
  readonly stream?: string;
  readonly maxEvents?: number;
  readonly maxAgeMs?: number;
  /**
   * Latest values per (tenant, topic, key) kept for snapshots, across tenants: past it the slot
   * updated longest ago is evicted. 0: none kept. Default 10 000 (see `LatestKeeping`).
   */
  readonly latestMaxKeys?: number;
  readonly onError?: (error: unknown, context: string) => void;
}

/**
 * One backend, as it registers itself (see registry.ts): its name, the URLs it answers to, and
 * how its broker and, when it has one, its bridge source are made. Nothing here loads a client:
 * a backend's client library is loaded only when its broker or bridge is asked for.
 */
export interface Backend {
  /** The broker's kind: its name in stats, `/readyz` and logs, and the prefix of its bridges. */
  readonly kind: string;
  /** How messages name it: `Redis` (`the Redis broker`, `a Redis URL`). */
  readonly title: string;
  /** URL schemes it answers to (`redis`, `rediss`); none: it is named by its kind alone (`memory`). */
  readonly schemes: readonly string[];
  /** How its URL looks, for help and error texts: `redis://host:port[/db]`. */
  readonly example: string;
  /** What its broker needs installed (optional peer dependencies), as `npm install` takes them. */
  readonly packages: readonly string[];
  /** Loads the broker's module and makes the broker; `stream` is already defaulted. */
  broker(settings: BrokerSettings & { readonly stream: string }): Promise<Broker>;
  /** Its pub/sub as a source of `--bridge` messages, when it has one. */
  readonly bridge?: BridgeSource;
}
