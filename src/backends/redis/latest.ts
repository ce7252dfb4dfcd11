import type { EventDraft, HeraldEvent } from '../../core/event.ts';
import type { LatestEvents } from '../../core/log.ts';
import { decodeEvent } from '../codec.ts';
import { message, type RedisConnections } from './connections.ts';

/** Fields per HSCAN page of a tenant's latest values. */
const SCAN_COUNT = 1000;

/**
 * The latest values per key on Redis (see APPEND in scripts.ts for the keys, and `LatestKeeping`
 * in core/log.ts for what they are): what the append adds to its script's KEYS and ARGV, and the
 * read of a tenant's slots.
 */
export class RedisLatest {
  readonly maxKeys: number;
  /** `<stream>:latest:`, which every tenant's hash starts with. */
  readonly prefix: string;
  /** `<stream>:latest-order`: every slot, scored by when it was last updated. */
  readonly orderKey: string;
  private readonly connections: RedisConnections;

  constructor(stream: string, maxKeys: number, connections: RedisConnections) {
    this.maxKeys = maxKeys;
    this.prefix = `${stream}:latest:`;
    this.orderKey = `${stream}:latest-order`;
    this.connections = connections;
  }

  /**
   * Appends the keyed drafts' part of the script's ARGV (number, index of the tenant's hash in
   * KEYS, field), declaring each tenant's hash once in KEYS. Nothing when no draft has a key.
   */
  addSlots(drafts: readonly EventDraft[], keys: string[], args: string[]): void {
    if (this.maxKeys === 0) return;
    let hashes: Map<string, number> | undefined;
    for (let n = 0; n < drafts.length; n++) {
      const draft = drafts[n] as EventDraft;
      if (draft.key === undefined) continue;
      hashes ??= new Map();
      let index = hashes.get(draft.tenant);
      if (index === undefined) {
        index = keys.push(this.hashOf(draft.tenant));
        hashes.set(draft.tenant, index);
      }
      const topic = draft.topics[0] as string;
      args.push(String(n + 1), String(index), `${Buffer.byteLength(topic)}:${topic}:${draft.key}`);
    }
  }

  /** The tenant's slots: HSCAN pages until done or past `limit`. */
  async read(tenant: string, limit: number): Promise<LatestEvents> {
    const hash = this.hashOf(tenant);
    const found = new Map<string, string>();
    let cursor = '0';
    do {
      const page = await this.connections.call('latest', () =>
        this.connections.client.hScan(hash, cursor, { COUNT: SCAN_COUNT }),
      );
      cursor = String(page.cursor);
      // HSCAN may give a field twice; the map keeps it once.
      for (const { field, value } of page.entries) found.set(field, value);
    } while (cursor !== '0' && found.size <= limit);
    const events: HeraldEvent[] = [];
    for (const [field, value] of found) {
      if (events.length >= limit) break;
      // `<entry id> <JSON>`: the event keeps its position in the log.
      const space = value.indexOf(' ');
      try {
        events.push(decodeEvent(value.slice(space + 1), value.slice(0, space)));
      } catch (error) {
        this.connections.report(
          new Error(`latest value ${field} of ${hash} is not a Herald event: ${message(error)}`),
          'decode',
        );
      }
    }
    return { events, complete: cursor === '0' && found.size <= limit };
  }

  /** A tenant's hash; the tenant's length in bytes keeps every tenant's name apart. */
  private hashOf(tenant: string): string {
    return `${this.prefix}${Buffer.byteLength(tenant)}:${tenant}`;
  }
}
