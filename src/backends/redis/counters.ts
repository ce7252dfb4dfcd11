import type { SharedCounting, WindowCount } from '../../core/cluster.ts';
import { HeraldError } from '../../core/errors.ts';
import { counterKey, counterLimit, counterNode, liveNodes, windowArguments } from '../counter-input.ts';
import type { RedisConnections } from './connections.ts';
import { script } from './scripts.ts';

/**
 * Counts one more for ARGV[1] in the hash KEYS[1] (field: node, value: its count) unless the
 * counts of the live nodes (ARGV[3…]) sum to the limit ARGV[2]; the fields of other nodes are
 * dropped first. One script, so atomic across nodes. Returns 1 when it counted, 0 at the limit.
 */
const ACQUIRE_SCRIPT = `
local live = {}
for i = 3, #ARGV do live[ARGV[i]] = true end
local counts = redis.call('HGETALL', KEYS[1])
local sum = 0
for i = 1, #counts, 2 do
  if live[counts[i]] then sum = sum + tonumber(counts[i + 1])
  else redis.call('HDEL', KEYS[1], counts[i]) end
end
if sum >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return 1
`;

/** Counts one less for ARGV[1] in the hash KEYS[1], never below zero: a count of zero is no field. */
const RELEASE_SCRIPT = `
local count = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if count > 1 then return redis.call('HINCRBY', KEYS[1], ARGV[1], -1) end
redis.call('HDEL', KEYS[1], ARGV[1])
return 0
`;

/**
 * Adds ARGV[1] to the window counter KEYS[1]; a counter without an expiry (new, or made by an
 * INCRBY of a window that had just expired) gets one of ARGV[2] ms, so the window is Redis's
 * clock's. Returns {total, ms left}.
 */
const CONSUME_SCRIPT = `
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  left = tonumber(ARGV[2])
end
return {total, left}
`;

const ACQUIRE = script(ACQUIRE_SCRIPT);
const RELEASE = script(RELEASE_SCRIPT);
const CONSUME = script(CONSUME_SCRIPT);

/**
 * Shared counters in Redis, under the broker's prefix: a hash `<stream>:count:<key>` per counter
 * (a field per node) and a string `<stream>:window:<key>` per window, which Redis expires at its
 * end. Keys hold any characters as they are: Redis keys are bytes. On Redis Cluster the
 * `stream`'s hash tag keeps every key of a log in one slot, these included.
 */
export class RedisCounters implements SharedCounting {
  private readonly countPrefix: string;
  private readonly windowPrefix: string;
  private readonly connections: RedisConnections;

  constructor(stream: string, connections: RedisConnections) {
    this.countPrefix = `${stream}:count:`;
    this.windowPrefix = `${stream}:window:`;
    this.connections = connections;
  }

  async acquire(key: string, node: string, limit: number, live: readonly string[]): Promise<boolean> {
    counterKey(key);
    counterNode(node);
    counterLimit(limit);
    const args = [node, String(limit), ...liveNodes(live, node)];
    const reply = await this.connections.run(ACQUIRE, [this.countPrefix + key], args, 'acquire');
    return reply === 1;
  }

  async release(key: string, node: string): Promise<void> {
    counterKey(key);
    counterNode(node);
    await this.connections.run(RELEASE, [this.countPrefix + key], [node], 'release');
  }

  async consume(key: string, amount: number, windowMs: number): Promise<WindowCount> {
    counterKey(key);
    windowArguments(amount, windowMs);
    const reply = await this.connections.run(
      CONSUME,
      [this.windowPrefix + key],
      [String(amount), String(windowMs)],
      'consume',
    );
    if (!Array.isArray(reply) || reply.length !== 2) {
      throw new HeraldError(503, 'broker-unavailable', 'redis gave an unexpected answer to a window count');
    }
    return { total: Number(reply[0]), resetMs: Number(reply[1]) };
  }
}
