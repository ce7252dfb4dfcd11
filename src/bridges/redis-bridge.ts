import type { RedisClientType } from 'redis';
import { redactUrl } from '../brokers/redact-url.ts';
import { withTimeout } from '../brokers/with-timeout.ts';
import { BridgeError, type Pump } from './pump.ts';

// The client is an optional peer dependency, loaded at run time by Node from the app's
// node_modules: the comments keep app bundlers (Next.js) from resolving it at build time, where
// an app on the memory broker does not have it.
const { createClient } = await import(/* webpackIgnore: true */ /* turbopackIgnore: true */ 'redis');

/*
 * Redis pub/sub → Herald.
 *
 * Delivery: Redis pub/sub is at-most-once. A message published while no bridge is subscribed
 * (every node down, or the connection to Redis broken and not yet re-established) is gone: Redis
 * keeps nothing for absent subscribers. That is the gap Herald's own log closes for its clients;
 * a bridge can only carry what reaches it. Publishers that cannot afford the loss should publish
 * to Herald directly, or to a Redis Stream / JetStream subject that is consumed durably.
 *
 * One event per message across nodes: pub/sub has no queue groups, so every node running the
 * same bridge receives every message. Only the holder of the bridge's lease publishes:
 *
 *   SET herald:bridge:<spec hash> <node id> NX PX <leaseMs>      take it when free
 *   renew (compare-and-PEXPIRE, a script) every renewEveryMs      keep it while alive
 *   release (compare-and-DEL) on close                            hand over at once
 *
 * The others stay subscribed and discard what they receive ("standby"), so a takeover needs no
 * new subscription: after the holder stops renewing, another node takes the lease within
 * leaseMs + renewEveryMs. Messages in that window are lost (at-most-once again), never doubled:
 * a holder trusts its lease only until `sent + leaseMs − margin`, measured from before the SET or
 * renewal was sent, so it stops publishing before Redis can give the lease to anyone else. A node
 * whose subscriber connection is down gives its lease up, so a node that can hear takes over.
 *
 * The lease belongs to a spec, not to a node: different bridges may be led by different nodes.
 * Its key hashes the spec's canonical text, so nodes agree only when they run the same mapping;
 * during a rolling change of a spec, old and new nodes each publish their version.
 */

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

export interface RedisBridgeOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…`. */
  readonly url: string;
  /** This bridge runner's name in the lease. Unique per runner. */
  readonly nodeId: string;
  /** Lease lifetime, ms. Default 10 000. */
  readonly leaseMs: number;
  /** How often the holder renews and the others try to take the lease, ms. Default 3 000. */
  readonly renewEveryMs: number;
  /** How long the first connection may take before `start` fails, ms. */
  readonly connectTimeoutMs: number;
  /** Prefix of lease keys. Default `herald:bridge:`. */
  readonly leasePrefix: string;
  readonly report: (error: BridgeError) => void;
}

interface Lease {
  readonly key: string;
  held: boolean;
  /** Until when this node may publish under the lease (local clock). */
  validUntil: number;
}

interface Entry {
  readonly pump: Pump;
  readonly lease: Lease;
  /** Messages received while another node held the lease. */
  standby: number;
}

export interface RedisBridgeStats {
  readonly spec: string;
  readonly leader: boolean;
  readonly standby: number;
}

type Client = RedisClientType;

export class RedisBridge {
  private readonly options: RedisBridgeOptions;
  private readonly entries: Entry[];
  private readonly subscriber: Client;
  private readonly commands: Client;
  private timer: ReturnType<typeof setInterval> | undefined;
  private ticking = false;
  private closed = false;

  private constructor(options: RedisBridgeOptions, entries: Entry[], subscriber: Client, commands: Client) {
    this.options = options;
    this.entries = entries;
    this.subscriber = subscriber;
    this.commands = commands;
  }

  /**
   * Connects (failing after `connectTimeoutMs` with the reason when Redis cannot be reached),
   * subscribes every pattern and makes a first attempt at each lease, so that when this resolves
   * every bridge is listening and led by this node or another.
   */
  static async start(
    pumps: readonly { readonly pump: Pump; readonly hash: string }[],
    options: RedisBridgeOptions,
  ): Promise<RedisBridge> {
    const where = redactUrl(options.url);
    const subscriber = connection(options, 'subscriber', where);
    // Lease commands fail at once while disconnected rather than queue: a renewal that arrives
    // late must not extend a lease this node has already stopped trusting.
    const commands = connection(options, 'lease', where, true);
    const entries = pumps.map(({ pump, hash }) => ({
      pump,
      lease: { key: `${options.leasePrefix}${hash}`, held: false, validUntil: 0 },
      standby: 0,
    }));
    const bridge = new RedisBridge(options, entries, subscriber, commands);
    try {
      await Promise.all([subscriber.connect(), commands.connect()]);
      for (const entry of entries) {
        await subscriber.pSubscribe(entry.pump.spec.pattern, (message, channel) =>
          bridge.receive(entry, channel, message),
        );
      }
      await bridge.tick();
    } catch (error) {
      subscriber.destroy();
      commands.destroy();
      throw new Error(
        `Redis bridges: cannot use Redis at ${where}: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    bridge.timer = setInterval(() => void bridge.tick(), options.renewEveryMs);
    bridge.timer.unref?.();
    return bridge;
  }

  get connected(): boolean {
    return this.subscriber.isReady;
  }

  stats(): RedisBridgeStats[] {
    return this.entries.map((entry) => ({
      spec: entry.pump.spec.text,
      leader: this.leads(entry.lease),
      standby: entry.standby,
    }));
  }

  /** Releases the leases this node holds (so another node takes over at once) and disconnects. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    // No message is taken in from here on; the pumps finish what they hold.
    this.subscriber.destroy();
    const held = this.entries.filter((entry) => entry.lease.held);
    await withTimeout(
      Promise.all(
        held.map(async ({ lease }) => {
          lease.held = false;
          lease.validUntil = 0;
          await this.commands.eval(RELEASE, { keys: [lease.key], arguments: [this.options.nodeId] });
        }),
      ),
      1_000,
      'releasing the bridge leases',
    ).catch(() => {
      // Unreachable Redis: the lease lapses by itself after leaseMs.
    });
    this.commands.destroy();
  }

  private receive(entry: Entry, channel: string, message: string): void {
    if (this.closed) return;
    if (!this.leads(entry.lease)) {
      entry.standby++;
      return;
    }
    entry.pump.push(channel, message);
  }

  private leads(lease: Lease): boolean {
    return lease.held && Date.now() < lease.validUntil;
  }

  /** Renews held leases and tries to take free ones. Never throws; never overlaps itself. */
  private async tick(): Promise<void> {
    if (this.ticking || this.closed) return;
    this.ticking = true;
    try {
      for (const entry of this.entries) await this.tend(entry.lease);
    } finally {
      this.ticking = false;
    }
  }

  private async tend(lease: Lease): Promise<void> {
    const { nodeId, leaseMs } = this.options;
    // Publishing stops this long before Redis would expire the key: slack for clock-rate drift
    // and for the time between reading the clock and acting on the answer.
    const margin = Math.min(1_000, leaseMs / 10);
    try {
      if (!this.subscriber.isReady) {
        // Deaf: let a node that hears the channel lead.
        if (lease.held) {
          lease.held = false;
          lease.validUntil = 0;
          await this.commands.eval(RELEASE, { keys: [lease.key], arguments: [nodeId] });
        }
        return;
      }
      const sentAt = Date.now();
      if (lease.held) {
        const renewed = await this.commands.eval(RENEW, {
          keys: [lease.key],
          arguments: [nodeId, String(leaseMs)],
        });
        if (renewed === 1) {
          lease.validUntil = sentAt + leaseMs - margin;
          return;
        }
        // Lapsed (this node stalled longer than the lease) and perhaps taken: start over.
        lease.held = false;
        lease.validUntil = 0;
      }
      const taken = await this.commands.set(lease.key, nodeId, {
        condition: 'NX',
        expiration: { type: 'PX', value: leaseMs },
      });
      if (taken === 'OK') {
        lease.held = true;
        lease.validUntil = sentAt + leaseMs - margin;
      }
    } catch {
      // Redis unreachable: the connection's own error was reported once; `validUntil` runs out
      // by itself, and the next tick tries again.
    }
  }
}

function connection(options: RedisBridgeOptions, role: string, where: string, failFast = false): Client {
  const startedAt = Date.now();
  let ready = false;
  let reportedDown = false;
  const client = createClient({
    url: options.url,
    // CLIENT LIST shows who is who; names may not contain spaces.
    name: `herald-bridge:${options.nodeId}:${role}`.replace(/\s/g, '_'),
    disableOfflineQueue: failFast,
    socket: {
      connectTimeout: options.connectTimeoutMs,
      reconnectStrategy: (retries, cause) => {
        // The first connection fails `start` after connectTimeoutMs; later ones retry forever.
        if (!ready && Date.now() - startedAt >= options.connectTimeoutMs) return cause;
        return Math.min(100 * 2 ** retries, 3_000) + Math.floor(Math.random() * 100);
      },
    },
  }) as Client;
  client.on('ready', () => {
    ready = true;
    reportedDown = false;
  });
  // node-redis emits `error` on every failed attempt; without a listener it would crash the
  // process. The first failure after being connected is reported; the retries that follow are not.
  client.on('error', (error: Error) => {
    if (!ready || reportedDown) return;
    reportedDown = true;
    options.report(
      new BridgeError(
        'redis',
        `${role} connection to ${where} lost (${error.message}); reconnecting`,
        undefined,
        error,
      ),
    );
  });
  return client;
}
