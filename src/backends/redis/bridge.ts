import {
  BridgeError,
  type BridgeInlet,
  type RunningSource,
  type SourceSettings,
} from '../../bridges/source.ts';
import { redactUrl } from '../redact-url.ts';
import { withTimeout } from '../with-timeout.ts';
import { type RedisClient, redisClient } from './client.ts';

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

interface Lease {
  readonly key: string;
  held: boolean;
  /** Until when this node may publish under the lease (local clock). */
  validUntil: number;
}

interface Entry {
  readonly inlet: BridgeInlet;
  readonly lease: Lease;
  /** Messages received while another node held the lease. */
  standby: number;
}

export interface RedisBridgeStats {
  /** Whether this runner holds the bridge's lease (only the holder publishes). */
  readonly leader: boolean;
  /** Messages seen while another runner held the lease, and so left to it. */
  readonly standby: number;
}

type Client = RedisClient;

export class RedisBridge implements RunningSource {
  private readonly options: SourceSettings;
  private readonly entries: Entry[];
  private readonly subscriber: Client;
  private readonly commands: Client;
  private timer: ReturnType<typeof setInterval> | undefined;
  private ticking = false;
  private closed = false;

  private constructor(options: SourceSettings, entries: Entry[], subscriber: Client, commands: Client) {
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
    inlets: readonly { readonly inlet: BridgeInlet; readonly hash: string }[],
    options: SourceSettings,
  ): Promise<RedisBridge> {
    const where = redactUrl(options.url);
    const subscriber = connection(options, 'subscriber', where);
    // Lease commands fail at once while disconnected rather than queue: a renewal that arrives
    // late must not extend a lease this node has already stopped trusting.
    const commands = connection(options, 'lease', where, true);
    const entries = inlets.map(({ inlet, hash }) => ({
      inlet,
      lease: { key: `${options.leasePrefix}${hash}`, held: false, validUntil: 0 },
      standby: 0,
    }));
    const bridge = new RedisBridge(options, entries, subscriber, commands);
    try {
      await Promise.all([subscriber.connect(), commands.connect()]);
      for (const entry of entries) {
        await subscriber.pSubscribe(entry.inlet.spec.pattern, (message, channel) =>
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
    entry.inlet.push(channel, message);
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

function connection(options: SourceSettings, role: string, where: string, failFast = false): Client {
  let ready = false;
  let reportedDown = false;
  const client = redisClient({
    url: options.url,
    // CLIENT LIST shows who is who; names may not contain spaces.
    name: `herald-bridge:${options.nodeId}:${role}`.replace(/\s/g, '_'),
    failFast,
    connectTimeoutMs: options.connectTimeoutMs,
    // The first connection fails `start` after connectTimeoutMs; later ones retry forever.
    firstConnectMs: options.connectTimeoutMs,
  });
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
