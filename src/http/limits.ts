import type { SharedCounting } from '../core/cluster.ts';
import { HeraldError } from '../core/errors.ts';
import { publishesKey } from './limit-keys.ts';
import { PublishLeases, UNAVAILABLE } from './publish-leases.ts';
import type { HttpRequest } from './request.ts';
import { SharedCounterGuard, type SharedCounterGuardOptions } from './shared-counter-guard.ts';
import { acquireStreamSlots } from './shared-streams.ts';
import { StreamCounts } from './stream-counts.ts';
import { BucketMap, EPSILON } from './token-buckets.ts';

/**
 * Admission limits, checked for every request. The checks on the node are O(1), use no timers,
 * and hold memory only for keys that are currently "in debt" (a bucket that is not full, a stream
 * that is open), so a flood of distinct IPs cannot grow them without bound.
 *
 * Where they are counted (`scope`): streams per tenant and per subject, and publish rates per
 * credential, across every node sharing the broker when the broker can count (Redis, NATS, the
 * workers' primary: src/core/cluster.ts), else on each node. Per-IP limits are always per node:
 * an IP is what one node sees of a client, and checking it costs no broker round trip, so a flood
 * from one address is refused before it costs the broker anything. When the broker cannot answer
 * a check within 250 ms, that check is made on this node (src/http/shared-counter-guard.ts).
 *
 * Who is counted where:
 * - Requests are counted per IP (behind a load balancer, per client once `trustProxy` names it).
 * - Publishes are not: a backend publishing one event per request at a few hundred per second is
 *   one legitimate client, not a flood. Once its token verifies, a publish is counted against its
 *   credential's publish rate (per subject, else per tenant) and never against its IP.
 * - What keeps unauthenticated floods of publishes in check is the per-IP rate still: a publish
 *   whose credential is refused (401/403) costs its IP a request, and a publish from an IP whose
 *   request bucket is empty is refused (429) before its token is even verified. So forged tokens
 *   cost the hub no more than any other flood from one address, and a legitimate publisher is only
 *   slowed by refusals from its own address.
 */
export interface LimitOptions {
  /**
   * `cluster` (the default): streams per tenant and per subject, and publish rates per
   * credential, are counted across all nodes sharing the broker, when it can count (Redis, NATS,
   * `--workers`; on a broker that cannot, such as the memory broker, the node is the whole
   * cluster). `node`: each node counts on its own, as if it were alone, with no broker round trip
   * when a stream opens.
   */
  readonly scope?: 'cluster' | 'node';
  /**
   * Requests per IP (publishes with a valid credential aside): a token bucket. Default 100/s,
   * burst 1 000: a page, or a thousand clients behind one NAT reconnecting together, get
   * through; a loop does not. Behind a reverse proxy every client shares its address unless
   * `trustProxy` names it. 0 disables.
   */
  readonly connectionsPerSecondPerIp?: number;
  readonly connectionBurstPerIp?: number;
  /**
   * Open streams at once. Defaults: 1 000 per subject; per IP and per tenant off, because every
   * client behind a reverse proxy shares its IP and a tenant's size is the deployment's business.
   * 0 disables each.
   */
  readonly streamsPerIp?: number;
  readonly streamsPerSubject?: number;
  readonly streamsPerTenant?: number;
  /**
   * Events published per second per credential (its subject; tokens without one share their
   * tenant's bucket): a token bucket over events, not requests, so a batch of 500 costs 500.
   * Default 10 000/s, burst 20 000: far above what one backend publishes, far below what would
   * let one credential crowd out the rest. 0 disables.
   */
  readonly publishesPerSecondPerSubject?: number;
  readonly publishBurstPerSubject?: number;
  /**
   * How many IPs (and, separately, publishing subjects) are remembered at most. Only buckets
   * that are not full are kept at all, and idle ones are swept as requests arrive; this cap is
   * the hard bound for a flood of distinct IPs. Past it the least recently seen IP is forgotten,
   * which gives it a fresh bucket: the limiter fails open rather than refusing newcomers.
   * Default 50 000 (a few MiB).
   */
  readonly maxTrackedKeys?: number;
}

export const DEFAULT_LIMITS: Readonly<Required<LimitOptions>> = {
  scope: 'cluster',
  connectionsPerSecondPerIp: 100,
  connectionBurstPerIp: 1_000,
  streamsPerIp: 0,
  streamsPerSubject: 1_000,
  streamsPerTenant: 0,
  publishesPerSecondPerSubject: 10_000,
  publishBurstPerSubject: 20_000,
  maxTrackedKeys: 50_000,
};

/**
 * Where publishers POST: exempt from the per-IP request rate while their credential verifies.
 * The paths are spelled out here so that limits need not import the routes they limit.
 */
const PUBLISH_PATHS: ReadonlySet<string> = new Set(['/v1/publish', '/.well-known/mercure']);

/** Who a publish is counted against: the credential's subject, else its tenant. */
export interface PublishCredential {
  readonly tenant: string;
  readonly subject?: string | undefined;
}

/** Retry-After for a refused stream: nothing tells us when a slot frees up, so a short, fixed wait. */
const STREAM_RETRY_AFTER_SEC = 5;

const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000 - EPSILON));

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The limits that are numbers. */
type Figure = Exclude<keyof LimitOptions, 'scope'>;

function rate(options: LimitOptions, key: Figure): number {
  const value = options[key] ?? DEFAULT_LIMITS[key];
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`${key} is ${value}; use a number of 0 or more (0 disables the limit)`);
  }
  return value;
}

function burst(options: LimitOptions, key: Figure, enabled: boolean): number {
  const value = options[key] ?? DEFAULT_LIMITS[key];
  if (enabled && (!Number.isFinite(value) || value < 1)) {
    throw new RangeError(`${key} is ${value}; use a number of 1 or more`);
  }
  return value;
}

function count(options: LimitOptions, key: Figure, min: number): number {
  const value = options[key] ?? DEFAULT_LIMITS[key];
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(`${key} is ${value}; use a whole number of ${min} or more`);
  }
  return value;
}

/**
 * A credential's publish bucket. A subject is named within its tenant (two tenants' issuers may
 * both have an `alice`), and tokens without one share their tenant's bucket. Tenants hold no
 * control characters (src/auth/claims.ts), so the NUL cannot be forged into another's key.
 */
function publisherKey(credential: string | PublishCredential): string {
  if (typeof credential === 'string') return credential;
  return credential.subject === undefined
    ? `tenant\u0000${credential.tenant}`
    : `subject\u0000${credential.tenant}\u0000${credential.subject}`;
}

export class Limits {
  private readonly now: () => number;
  private readonly connections: BucketMap | undefined;
  private readonly publishes: BucketMap | undefined;
  private readonly publishRate: number;
  private readonly publishBurst: number;
  private readonly maxKeys: number;
  /** Whether to count across nodes once the broker's counters are given (`countAcrossNodes`). */
  private readonly wantsCluster: boolean;
  /** The broker's counters, when streams and publishes are counted across nodes. */
  private shared: SharedCounterGuard | undefined;
  private leases: PublishLeases | undefined;
  private readonly maxPerIp: number;
  private readonly maxPerSubject: number;
  private readonly maxPerTenant: number;
  private readonly streamsByIp = new StreamCounts();
  private readonly streamsBySubject = new StreamCounts();
  private readonly streamsByTenant = new StreamCounts();
  private openStreams = 0;
  private readonly rejected = { connections: 0, streams: 0, publishes: 0 };

  constructor(options: LimitOptions = {}, now: () => number = Date.now) {
    this.now = now;
    const scope = options.scope ?? DEFAULT_LIMITS.scope;
    if (scope !== 'cluster' && scope !== 'node') {
      throw new RangeError(`scope is ${String(scope)}; use "cluster" or "node"`);
    }
    this.wantsCluster = scope === 'cluster';
    const maxKeys = count(options, 'maxTrackedKeys', 1);
    this.maxKeys = maxKeys;
    const connectionRate = rate(options, 'connectionsPerSecondPerIp');
    const connectionBurst = burst(options, 'connectionBurstPerIp', connectionRate > 0);
    this.connections =
      connectionRate > 0 ? new BucketMap(connectionRate, connectionBurst, maxKeys) : undefined;
    const publishRate = rate(options, 'publishesPerSecondPerSubject');
    this.publishRate = publishRate;
    this.publishBurst = burst(options, 'publishBurstPerSubject', publishRate > 0);
    this.publishes = publishRate > 0 ? new BucketMap(publishRate, this.publishBurst, maxKeys) : undefined;
    this.maxPerIp = count(options, 'streamsPerIp', 0);
    this.maxPerSubject = count(options, 'streamsPerSubject', 0);
    this.maxPerTenant = count(options, 'streamsPerTenant', 0);
  }

  /**
   * Counts streams per tenant and subject, and publishes per credential, on the broker's shared
   * counters from now on, unless the scope is `node`. Returns whether it will.
   */
  countAcrossNodes(counter: SharedCounting, options: SharedCounterGuardOptions): boolean {
    if (!this.wantsCluster) return false;
    this.shared = new SharedCounterGuard(counter, { now: this.now, ...options });
    if (this.publishRate > 0) {
      this.leases = new PublishLeases(this.shared, {
        rate: this.publishRate,
        burst: this.publishBurst,
        maxKeys: this.maxKeys,
        now: this.now,
      });
    }
    return true;
  }

  /** Where the limits are counted now: `cluster` once the broker's counters are in use. */
  get scope(): 'cluster' | 'node' {
    return this.shared === undefined ? 'node' : 'cluster';
  }

  /** Checks made on this node because the broker could not answer (`herald_limits_fallback_total`). */
  get fallbacks(): number {
    return this.shared?.fallbacks ?? 0;
  }

  /**
   * Admits a request by its IP, first thing: a publish only when its IP's request bucket is not
   * empty (it takes nothing: see {@link chargeRefusedCredential}), anything else by taking a
   * token. Throws 429 `too-many-connections`.
   */
  admit(request: Pick<HttpRequest, 'method' | 'path' | 'remoteAddress'>): void {
    const ip = request.remoteAddress;
    if (ip === undefined || this.connections === undefined) return;
    if (request.method === 'POST' && PUBLISH_PATHS.has(request.path)) {
      const wait = this.connections.wait(ip, 1, this.now());
      if (wait > 0) {
        throw this.tooManyRequests(wait, 'check the token: publishes whose credential was refused count too');
      }
      return;
    }
    this.admitRequest(ip);
  }

  /** Takes one token from the IP's connection bucket; throws 429 `too-many-connections` when it is empty. */
  admitRequest(ip: string): void {
    if (this.connections === undefined) return;
    const wait = this.connections.take(ip, 1, this.now());
    if (wait > 0) throw this.tooManyRequests(wait, 'reuse connections (one stream can carry many topics)');
  }

  /**
   * A publish whose credential was refused (`error` a 401 or 403) costs its IP a request, as if
   * publishes were never exempt. Never throws: the refusal stands as the answer.
   */
  chargeRefusedCredential(request: Pick<HttpRequest, 'remoteAddress'>, error: unknown): void {
    const status = error instanceof HeraldError ? error.status : 0;
    if (this.connections === undefined || request.remoteAddress === undefined) return;
    if (status !== 401 && status !== 403) return;
    this.connections.take(request.remoteAddress, 1, this.now());
  }

  private tooManyRequests(wait: number, advice: string): HeraldError {
    this.rejected.connections++;
    const retry = seconds(wait);
    return new HeraldError(
      429,
      'too-many-connections',
      `this IP is making requests faster than the limit allows; wait ${plural(retry, 'second')} ` +
        `before retrying, and ${advice}`,
      { headers: { 'retry-after': String(retry) } },
    );
  }

  /**
   * Reserves a stream slot for the IP, the subject (`undefined` for anonymous streams, which only
   * count against their IP and tenant) and the tenant. Throws 429 `too-many-streams` naming the
   * limit that was reached; nothing is reserved then. The returned release function frees the
   * slots; calling it again does nothing, so every close path may call it.
   */
  openStream(ip: string, subject: string | undefined, tenant: string): () => void {
    return this.openOnNode(ip, subject, tenant, true, true);
  }

  /**
   * Reserves a stream slot as `openStream` does, counting the tenant's and the subject's open
   * streams across all nodes when the scope is `cluster`: then it resolves once the broker has
   * counted them (or did not answer within 250 ms: then this node checks them), and throws the
   * same 429 at the limit. Synchronous, as `openStream`, when nothing is counted across nodes.
   */
  reserveStream(ip: string, subject: string | undefined, tenant: string): (() => void) | Promise<() => void> {
    const shared = this.shared;
    const maxPerSubject = subject === undefined ? 0 : this.maxPerSubject;
    if (shared === undefined || (this.maxPerTenant === 0 && maxPerSubject === 0)) {
      return this.openStream(ip, subject, tenant);
    }
    if (!shared.acquiring) {
      if (!shared.usable) shared.fellBack();
      return this.openStream(ip, subject, tenant);
    }
    // The IP first: a flood from one address costs the broker nothing.
    this.checkIp(ip);
    return acquireStreamSlots(shared, {
      tenant,
      subject,
      maxPerTenant: this.maxPerTenant,
      maxPerSubject,
    }).then((slots) => {
      if (slots.tenant === 'refused') throw this.tooManyStreams('this tenant', this.maxPerTenant, true);
      if (slots.subject === 'refused') throw this.tooManyStreams('this subject', maxPerSubject, true);
      let release: () => void;
      try {
        // What the broker counted is not checked again here; what it could not answer for is.
        release = this.openOnNode(
          ip,
          subject,
          tenant,
          slots.subject === 'unavailable',
          slots.tenant === 'unavailable',
        );
      } catch (error) {
        slots.release();
        throw error;
      }
      return () => {
        release();
        slots.release();
      };
    });
  }

  private checkIp(ip: string): void {
    if (this.maxPerIp === 0) return;
    const open = this.streamsByIp.get(ip);
    if (open >= this.maxPerIp) throw this.tooManyStreams('this IP', this.maxPerIp, false, open);
  }

  /** Counts the stream on this node, checking the IP and, when asked, the subject and tenant. */
  private openOnNode(
    ip: string,
    subject: string | undefined,
    tenant: string,
    checkSubject: boolean,
    checkTenant: boolean,
  ): () => void {
    const trackIp = this.maxPerIp > 0;
    const trackSubject = this.maxPerSubject > 0 && subject !== undefined;
    // A subject is named within its tenant: another tenant's `alice` must not use up this one's.
    const subjectKey = trackSubject ? publisherKey({ tenant, subject }) : '';
    this.checkIp(ip);
    if (trackSubject && checkSubject) {
      const open = this.streamsBySubject.get(subjectKey);
      if (open >= this.maxPerSubject)
        throw this.tooManyStreams('this subject', this.maxPerSubject, false, open);
    }
    // Tenants are always counted (for /v1/stats); only the check is optional.
    const tenantOpen = this.streamsByTenant.get(tenant);
    if (checkTenant && this.maxPerTenant > 0 && tenantOpen >= this.maxPerTenant) {
      throw this.tooManyStreams('this tenant', this.maxPerTenant, false, tenantOpen);
    }
    if (trackIp) this.streamsByIp.add(ip);
    if (trackSubject) this.streamsBySubject.add(subjectKey);
    this.streamsByTenant.add(tenant);
    this.openStreams++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (trackIp) this.streamsByIp.remove(ip);
      if (trackSubject) this.streamsBySubject.remove(subjectKey);
      this.streamsByTenant.remove(tenant);
      this.openStreams--;
    };
  }

  /**
   * Takes `events` tokens from the credential's publish bucket: its subject's, else its tenant's
   * (a string is a bucket's key as it is). Throws 429 `publish-rate-exceeded` with Retry-After =
   * the seconds until the whole batch fits, or 413 `batch-too-large` when the batch is larger
   * than the burst and so could never fit.
   */
  admitPublish(credential: string | PublishCredential, events: number): void {
    if (this.publishes === undefined || events <= 0) return;
    this.checkBatch(events);
    const wait = this.publishes.take(publisherKey(credential), events, this.now());
    if (wait > 0) throw this.publishRateExceeded(credential, events, wait);
  }

  /**
   * Admits a publish as `admitPublish` does, counting the credential's events across all nodes
   * when the scope is `cluster` (src/http/publish-leases.ts): synchronous while this node's lease
   * of the credential's window covers the batch, a promise (one broker round trip, or 250 ms at
   * most) when the lease must be refilled. The same 413 and 429 refusals.
   */
  reservePublish(credential: string | PublishCredential, events: number): undefined | Promise<void> {
    const leases = this.leases;
    if (leases === undefined) {
      this.admitPublish(credential, events);
      return undefined;
    }
    if (events <= 0) return undefined;
    this.checkBatch(events);
    const key = publishesKey(credential);
    const wait = leases.take(key, events);
    if (typeof wait === 'number') {
      this.settlePublish(credential, events, wait);
      return undefined;
    }
    return wait.then((answer) => this.settlePublish(credential, events, answer));
  }

  /** A lease's answer: admitted, refused for `wait` ms, or left to this node's bucket. */
  private settlePublish(credential: string | PublishCredential, events: number, wait: number): void {
    if (wait === UNAVAILABLE) this.admitPublish(credential, events);
    else if (wait > 0) throw this.publishRateExceeded(credential, events, wait);
  }

  /** A batch larger than the burst could never fit: 413, not a 429 to retry for ever. */
  private checkBatch(events: number): void {
    if (events <= this.publishBurst) return;
    this.rejected.publishes++;
    throw new HeraldError(
      413,
      'batch-too-large',
      `the batch has ${events} events; at most ${this.publishBurst} can be published at once ` +
        `(the publish burst per subject); split it into smaller batches`,
    );
  }

  private publishRateExceeded(
    credential: string | PublishCredential,
    events: number,
    wait: number,
  ): HeraldError {
    this.rejected.publishes++;
    const retry = seconds(wait);
    const who =
      typeof credential !== 'string' && credential.subject === undefined
        ? "this tenant's tokens without a subject are"
        : 'this subject is';
    return new HeraldError(
      429,
      'publish-rate-exceeded',
      `${who} publishing faster than the limit allows; this batch of ${plural(events, 'event')} ` +
        `fits in ${plural(retry, 'second')}: retry then, or batch and slow down`,
      { headers: { 'retry-after': String(retry) } },
    );
  }

  /** Figures for /v1/stats. `streamsByTenant` lists the 10 tenants with the most open streams. */
  snapshot(): Record<string, unknown> {
    return {
      trackedIps: this.connections?.size ?? 0,
      trackedPublishers: this.publishes?.size ?? 0,
      scope: this.scope,
      ...(this.shared === undefined
        ? {}
        : {
            leasedPublishers: this.leases?.size ?? 0,
            fallbacks: this.shared.fallbacks,
            // The broker is failing, or this node's roster may not know every node yet.
            countingOnNode: !this.shared.acquiring,
          }),
      evictedBuckets: (this.connections?.evicted ?? 0) + (this.publishes?.evicted ?? 0),
      openStreams: this.openStreams,
      ipsWithStreams: this.streamsByIp.size,
      subjectsWithStreams: this.streamsBySubject.size,
      tenantsWithStreams: this.streamsByTenant.size,
      streamsByTenant: this.streamsByTenant.top(10),
      rejected: { ...this.rejected },
    };
  }

  /** `open`: how many this node counts; across nodes the broker only says the limit is reached. */
  private tooManyStreams(who: string, limit: number, acrossNodes: boolean, open = limit): HeraldError {
    this.rejected.streams++;
    const where = acrossNodes ? ' across all nodes' : '';
    return new HeraldError(
      429,
      'too-many-streams',
      `${who} already has ${plural(open, 'open stream')}${where}; the limit is ${limit}. Close streams ` +
        'that are no longer needed (one stream can carry many topics) before opening another',
      { headers: { 'retry-after': String(STREAM_RETRY_AFTER_SEC) } },
    );
  }
}
