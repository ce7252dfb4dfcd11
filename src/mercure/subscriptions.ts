import { ANONYMOUS } from '../auth/token-authenticator.ts';
import { badRequest, HeraldError } from '../core/errors.ts';
import type { HeraldEvent } from '../core/event.ts';
import type { Hub } from '../core/hub.ts';
import { OPEN_PRINCIPAL } from '../core/principal.ts';
import { anyMatch } from '../core/topics.ts';
import type { HttpReply, HttpRequest } from '../http/request.ts';
import type { MercureAuth } from './auth.ts';
import { EARLIEST, SUBSCRIPTIONS_PATH } from './protocol.ts';

/**
 * Mercure's active subscriptions (spec §Active Subscriptions): a private update on
 * `/.well-known/mercure/subscriptions/{topic}/{subscriber}` when a subscription starts and when it
 * ends, and an API listing the active ones.
 *
 * The updates go through the log like any other, so every node sees every node's subscriptions:
 * each node folds them into its registry, from the retained history when it starts and then as
 * its feed dispatches them, and the API answers from that.
 */
const CONTEXT = 'https://mercure.rocks/';
/** The tag naming the node that published a subscription update. */
const NODE_TAG = 'herald-node';
const announcedKey = (tenant: string, topic: string) => `${tenant}\u0000${topic}`;
const HISTORY_PAGE = 500;

interface SubscriptionDocument {
  '@context'?: string;
  id: string;
  type: 'Subscription';
  subscriber: string;
  topic: string;
  active: boolean;
  lastEventID?: string;
  payload?: unknown;
}

/** One subscriber's subscriptions, announced on `join`; `leave` announces their end. */
export interface Presence {
  leave(): void;
}

export class ActiveSubscriptions {
  private readonly hub: Hub;
  /** Active subscriptions by tenant, then by their update topic (which is also their id). */
  private readonly active = new Map<string, Map<string, SubscriptionDocument>>();
  /** The last event each tenant's feed dispatched: the API's `lastEventID` and ETag. */
  private readonly lastIds = new Map<string, string>();
  /** This node's id, in the `node` tag of the updates it publishes. */
  private readonly nodeId: string | undefined;
  /** Which node announced each active subscription (by tenant, then id): dropped if it dies. */
  private readonly announcedBy = new Map<string, string>();

  constructor(hub: Hub, nodeId?: string) {
    this.hub = hub;
    this.nodeId = nodeId;
    // What the feed brings while the history is read waits, so nothing is folded out of order.
    let waiting: HeraldEvent[] | undefined = [];
    hub.observe((events) => {
      if (waiting === undefined) this.fold(events);
      else waiting.push(...events);
    });
    this.load()
      .then((until) => {
        const late = (waiting ?? []).filter((event) => hub.broker.compare(event.pos, until) > 0);
        waiting = undefined;
        this.fold(late);
      })
      .catch((error: unknown) => {
        waiting = undefined;
        if (!hub.isClosing)
          hub.options.onError(error, 'reading Mercure subscriptions from the history failed');
      });
  }

  /**
   * Folds the retained history, so a node that starts late lists the subscriptions that other
   * nodes announced before it. Resolves with the position it read up to.
   */
  private async load(): Promise<string> {
    await this.hub.whenReady();
    const until = this.hub.position;
    let after: string | null = null;
    for (;;) {
      const page = await this.hub.broker.read(after, until, HISTORY_PAGE);
      this.fold(page);
      const last = page.at(-1);
      if (last === undefined || page.length < HISTORY_PAGE) return until;
      after = last.pos;
    }
  }

  /** Announces a subscriber's subscriptions (one per selector); the returned presence ends them. */
  join(tenant: string, topics: readonly string[], payload: unknown): Presence {
    const subscriber = `urn:uuid:${globalThis.crypto.randomUUID()}`;
    const documents = topics.map((topic) => {
      const document: SubscriptionDocument = {
        '@context': CONTEXT,
        id: `${SUBSCRIPTIONS_PATH}/${queryEscape(topic)}/${queryEscape(subscriber)}`,
        type: 'Subscription',
        subscriber,
        topic,
        active: true,
      };
      if (payload !== undefined) document.payload = payload;
      return document;
    });
    this.announce(tenant, documents);
    return {
      leave: () =>
        this.announce(
          tenant,
          documents.map((document) => ({ ...document, active: false })),
        ),
    };
  }

  /** The active subscriptions of a tenant, optionally only those of one selector or subscriber. */
  list(tenant: string, topic?: string, subscriber?: string): SubscriptionDocument[] {
    const documents = [...(this.active.get(tenant)?.values() ?? [])];
    return documents.filter(
      (document) =>
        (topic === undefined || document.topic === topic) &&
        (subscriber === undefined || document.subscriber === subscriber),
    );
  }

  lastEventId(tenant: string): string {
    return this.lastIds.get(tenant) ?? EARLIEST;
  }

  /** Private updates, so only subscribers granted the subscriptions topics see who is there. */
  private announce(tenant: string, documents: readonly SubscriptionDocument[]): void {
    // A hub that closes ends every stream: nobody is left to tell.
    if (documents.length === 0 || this.hub.isClosing) return;
    const events = documents.map((document) => ({
      topic: document.id,
      private: true,
      data: JSON.stringify(document, null, 2),
      // Not in the document Mercure's subscribers read: a tag, which only Herald's side sees.
      ...(this.nodeId === undefined ? {} : { tags: { [NODE_TAG]: this.nodeId } }),
    }));
    this.hub.publish(events, { ...OPEN_PRINCIPAL, tenant }).catch((error: unknown) => {
      this.hub.options.onError(error, 'publishing Mercure subscription updates failed');
    });
  }

  /**
   * A node dropped out of the cluster (killed: it never announced the ends): its subscriptions
   * are no longer active. Every node drops them from its registry; the one told to `announce`
   * (one node of the cluster) publishes their ends, so Mercure's subscribers hear of them too.
   */
  nodeLeft(node: string, announce: boolean): void {
    for (const [tenant, documents] of this.active) {
      const ended: SubscriptionDocument[] = [];
      for (const [topic, document] of documents) {
        if (this.announcedBy.get(announcedKey(tenant, topic)) !== node) continue;
        documents.delete(topic);
        this.announcedBy.delete(announcedKey(tenant, topic));
        ended.push({ ...document, active: false });
      }
      if (documents.size === 0) this.active.delete(tenant);
      if (announce) this.announce(tenant, ended);
    }
  }

  private fold(events: readonly HeraldEvent[]): void {
    for (const event of events) {
      this.lastIds.set(event.tenant, event.id);
      const topic = event.topics[0];
      if (topic === undefined || !topic.startsWith(`${SUBSCRIPTIONS_PATH}/`)) continue;
      let document: SubscriptionDocument;
      try {
        document = JSON.parse(event.data) as SubscriptionDocument;
      } catch {
        continue;
      }
      if (document.type !== 'Subscription' || document.id !== topic) continue;
      let tenant = this.active.get(event.tenant);
      if (document.active) {
        if (tenant === undefined) {
          tenant = new Map();
          this.active.set(event.tenant, tenant);
        }
        tenant.set(topic, document);
        const node = event.tags?.[NODE_TAG];
        if (node !== undefined) this.announcedBy.set(announcedKey(event.tenant, topic), node);
      } else if (tenant !== undefined) {
        tenant.delete(topic);
        this.announcedBy.delete(announcedKey(event.tenant, topic));
        if (tenant.size === 0) this.active.delete(event.tenant);
      }
    }
  }
}

/**
 * `GET /.well-known/mercure/subscriptions[/{topic}[/{subscriber}]]`: JSON-LD, with the last
 * event id as `lastEventID` and ETag, so a client can subscribe from exactly there. The caller's
 * `mercure.subscribe` selectors must match the requested URL.
 */
export async function subscriptionsApi(
  auth: MercureAuth,
  registry: ActiveSubscriptions,
  request: HttpRequest,
): Promise<HttpReply> {
  const { principal } = await auth.authenticate(request, 'subscribe');
  const query = request.query.toString();
  const url = query === '' ? request.path : `${request.path}?${query}`;
  if (principal === ANONYMOUS) {
    throw new HeraldError(
      401,
      'token-required',
      'the subscriptions API needs a token whose mercure.subscribe selectors match its URL',
      { headers: { 'www-authenticate': 'Bearer realm="mercure"' } },
    );
  }
  if (!anyMatch(principal.subscribe, [url])) {
    throw new HeraldError(
      403,
      'subscriptions-forbidden',
      `the token's mercure.subscribe selectors do not match ${url}; add e.g. "${SUBSCRIPTIONS_PATH}{/topic}{/subscriber}"`,
    );
  }
  const segments = request.path.slice(SUBSCRIPTIONS_PATH.length).split('/').slice(1);
  if (segments.length > 2) throw notFound(request.path);
  const [topic, subscriber] = segments.map(queryUnescape);
  const lastEventID = registry.lastEventId(principal.tenant);
  const headers = { 'content-type': 'application/ld+json', etag: lastEventID };
  if (request.header('if-none-match') === lastEventID) {
    return { kind: 'response', status: 304, headers: { etag: lastEventID }, body: '' };
  }
  const found = registry.list(principal.tenant, topic, subscriber);
  let body: object;
  if (subscriber !== undefined) {
    const document = found[0];
    if (document === undefined) throw notFound(request.path);
    body = { ...document, '@context': CONTEXT, lastEventID };
  } else {
    body = {
      '@context': CONTEXT,
      id: url,
      type: 'Subscriptions',
      lastEventID,
      subscriptions: found.map(({ '@context': _, ...document }) => document),
    };
  }
  return { kind: 'response', status: 200, headers, body: JSON.stringify(body, null, 2) };
}

const notFound = (path: string) =>
  new HeraldError(404, 'subscription-not-found', `no active subscription at ${path}`);

/** Go's `url.QueryEscape`, as the reference hub escapes topics and subscribers in these URLs. */
export function queryEscape(text: string): string {
  return encodeURIComponent(text)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replaceAll('%20', '+');
}

function queryUnescape(segment: string): string {
  try {
    return decodeURIComponent(segment.replaceAll('+', ' '));
  } catch {
    throw badRequest('malformed-path', `${segment} is not a percent-encoded topic or subscriber`);
  }
}
