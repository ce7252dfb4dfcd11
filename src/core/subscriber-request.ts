import type { HeraldEvent } from './event.ts';
import type { EventFilter } from './filters.ts';
import { canSee } from './principal.ts';
import type { Selector } from './topics.ts';

/** The fields of a `Subscription` that say what it asks for. */
export interface SubscriberRequestInit {
  /** The tenant it watches; `*` (admins only) for every tenant. */
  readonly tenant: string;
  readonly selectors: readonly Selector[];
  readonly filter?: EventFilter | undefined;
  /** The principal's subscribe grants: which private events it may see. */
  readonly grants: readonly Selector[];
  /** Which redacted fields it may see. */
  readonly permissions?: readonly string[];
  /** The credential's subject: only it may change this stream's subscriptions. */
  readonly subject?: string | undefined;
  /** When the credential expires (ms since the epoch): `herald.reauth` comes first, then the end. */
  readonly expiresAt?: number | undefined;
}

/**
 * What a subscriber asked for, once its credential was checked: which tenant and topics, which of
 * their events, which private events and redacted fields it may see, who asked and until when.
 * It is what the index files and what every event is tested against; the connection that the hub
 * drives from event to event is `Subscriber`, which extends it.
 */
export class SubscriberRequest {
  /** The tenant it watches; `*` (admins only) for every tenant. */
  readonly tenant: string;
  /** Changed only through the hub (`changeSubscription`), which keeps its index in step. */
  selectors: readonly Selector[];
  /**
   * Changed only through the hub (`changeSubscription`), by one assignment: fan-out and a replay
   * in progress read it per event, so each event meets the old filter or the new one, never a mix.
   */
  filter: EventFilter | undefined;
  /** Its subscribe grants: which private events it may see. */
  readonly grants: readonly Selector[];
  /** Which redacted fields it may see. */
  readonly permissions: ReadonlySet<string>;
  /** Only the credential's subject may change its selectors. */
  readonly subject: string | undefined;
  /** When the credential expires, ms since the epoch; Infinity without one. */
  readonly expiresAt: number;

  constructor(init: SubscriberRequestInit) {
    this.tenant = init.tenant;
    this.selectors = init.selectors;
    this.filter = init.filter;
    this.grants = init.grants;
    this.permissions = permissionSet(init.permissions);
    this.subject = init.subject;
    this.expiresAt = init.expiresAt ?? Number.POSITIVE_INFINITY;
  }

  /**
   * For live events the index has already matched the tenant and topic: only the filter and
   * visibility remain.
   */
  accepts(event: HeraldEvent): boolean {
    return (this.filter === undefined || this.filter.accepts(event)) && canSee(this.grants, event);
  }
}

const NO_PERMISSIONS: ReadonlySet<string> = new Set();
/** Streams opened with the same permissions share one Set of them; bounded, like any cache here. */
const permissionSets = new Map<string, ReadonlySet<string>>();
const PERMISSION_SETS_LIMIT = 1_000;

function permissionSet(permissions: readonly string[] | undefined): ReadonlySet<string> {
  if (permissions === undefined || permissions.length === 0) return NO_PERMISSIONS;
  // JSON, not a join: no permission, whatever characters it holds, can pass for two.
  const key = JSON.stringify([...permissions].sort());
  let set = permissionSets.get(key);
  if (set === undefined) {
    set = new Set(permissions);
    if (permissionSets.size >= PERMISSION_SETS_LIMIT) permissionSets.clear();
    permissionSets.set(key, set);
  }
  return set;
}
