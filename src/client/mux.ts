import { CHANNEL_CLOSED_EVENT, CONNECTED_EVENT, REAUTH_EVENT } from '../core/protocol/system-events.ts';
import { backoffDelay } from './backoff.ts';
import { HeraldClientError, problemOf } from './errors.ts';
import { headers, type Session } from './session.ts';
import { createParser, type SseEvent } from './sse-parser.ts';

/**
 * The leader tab's shared stream (`GET /v1/events?mux=1`) and the channels it carries, one per
 * connection of a tab (`POST /v1/channels`). It opens what the tabs ask for, passes each channel's
 * events on labelled with it, and tells the tabs when their channels end; it never reopens a
 * channel itself: only its tab knows where it got to, so the tab's client reconnects it, as it
 * would a stream of its own.
 *
 * Token renewal: a `herald.reauth` (the credential expires soon) opens the next shared stream
 * with a fresh token; new channels open on it, the tabs' clients (which got the reauth on their
 * channels too) move theirs over, and the old stream is closed once no channel is left on it.
 */

/** What a tab asks of the leader to open one channel: a subscription, as a stream's query says it. */
export interface OpenRequest {
  readonly channel: string;
  /** The tab (its tab lock's name ends with it): when it goes, its channels are closed. */
  readonly tab: string;
  readonly topics: string[];
  readonly types: string[];
  readonly tags: Record<string, string[]>;
  readonly lastEventId?: string | undefined;
  readonly rewind?: number | undefined;
  readonly since?: string | undefined;
  readonly snapshot?: string | undefined;
}

/** What the leader tells the tabs. */
export type Notice =
  | { t: 'event'; channel: string; id: string; type: string; data: string }
  | { t: 'opened'; channel: string }
  | { t: 'failed'; channel: string; status: number; detail: string; code?: string; retryAfterMs: number }
  /** These channels are gone (their stream ended, or the hub closed them): reconnect. */
  | { t: 'ended'; channels: string[]; reason: string }
  /** No sharing here (for these channels, or for every one): each tab streams on its own. */
  | { t: 'unshared'; channels?: string[]; reason: string }
  /** The shared stream is alive (its heartbeats): the tabs' watchdogs are fed with it. */
  | { t: 'beat' };

export interface Mux {
  open(request: OpenRequest): void;
  close(channel: string): void;
  /** Closes the channels of a tab that went without closing them. */
  forget(tab: string): void;
  /** Ends the shared stream; every channel on it is told. */
  stop(): void;
}

/** One `GET /v1/events?mux=1`. */
interface Link {
  readonly abort: AbortController;
  readonly channels: Set<string>;
  id?: string;
  secret?: string;
  token?: string | undefined;
  last: number;
  bytes?: boolean;
  silent?: boolean;
  renewing?: boolean;
}

/** Streams cut off before a byte came through, in a row: then streaming cannot work from here. */
const EMPTY_LINKS_BEFORE_UNSHARING = 3;
const BEAT_EVERY_MS = 1000;

/**
 * @param settings a live client of this tab whose settings (URL, token, fetch) the stream uses;
 *   every client of the group has the same hub and credential.
 */
export function createMux(settings: () => Session | undefined, notify: (notice: Notice) => void): Mux {
  const wanted = new Map<string, OpenRequest>();
  const where = new Map<string, Link>();
  const opening = new Set<string>();
  const links = new Set<Link>();
  let current: Link | undefined;
  let stopped = false;
  let unshared: string | undefined;
  let attempt = 0;
  let unauthorized = 0;
  let emptyLinks = 0;
  let retryHint: number | undefined;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let watchTimer: ReturnType<typeof setInterval> | undefined;
  let lastBeat = 0;

  const connect = (): void => {
    clearTimeout(retryTimer);
    retryTimer = undefined;
    const session = settings();
    if (stopped || !session) return;
    const link: Link = { abort: new AbortController(), channels: new Set(), last: Date.now() };
    links.add(link);
    current = link;
    watchTimer ??= setInterval(
      () => {
        const now = Date.now();
        for (const each of links) {
          if (now - each.last > session.watchLimit) {
            each.silent = true;
            each.abort.abort();
          }
        }
      },
      Math.max(1000, session.watchLimit / 5),
    );
    run(session, link).then(
      () => ended(link),
      (error: unknown) => ended(link, error),
    );
  };

  const run = async (session: Session, link: Link): Promise<void> => {
    const value = session.options.token;
    link.token = typeof value === 'function' ? await value() : value;
    const response = await session.fetch(`${session.root}v1/events?mux=1`, {
      headers: headers(link.token, { accept: 'text/event-stream' }),
      signal: link.abort.signal,
      cache: 'no-store',
      credentials: session.credentials,
    });
    if (!response.ok) throw await problemOf(response);
    const body = response.body;
    if (!body || !/^text\/event-stream/i.test(response.headers.get('content-type') ?? '')) {
      await body?.cancel();
      throw new HeraldClientError(200, 'the shared stream is not an event stream', 'not-a-stream');
    }
    const parser = createParser(
      (event) => onEvent(session, link, event),
      (ms) => {
        retryHint = ms;
      },
    );
    const reader = body.getReader();
    for (;;) {
      const { done, value: chunk } = await reader.read();
      if (done) return;
      link.bytes = true;
      link.last = Date.now();
      if (link.last - lastBeat >= BEAT_EVERY_MS) {
        lastBeat = link.last;
        notify({ t: 'beat' });
      }
      parser.feed(chunk);
    }
  };

  const onEvent = (session: Session, link: Link, { id, type, data, channel }: SseEvent): void => {
    if (link.abort.signal.aborted) return;
    if (channel !== undefined) {
      if (!link.channels.has(channel)) return; // closed meanwhile
      if (type === CHANNEL_CLOSED_EVENT) {
        drop(channel);
        notify({ t: 'ended', channels: [channel], reason: `the hub closed the channel: ${data}` });
        return;
      }
      if (type === REAUTH_EVENT) renew(link);
      notify({ t: 'event', channel, id, type, data });
      return;
    }
    if (type === CONNECTED_EVENT) {
      try {
        const connected = JSON.parse(data) as { connectionId: string; secret: string };
        link.id = connected.connectionId;
        link.secret = connected.secret;
      } catch {
        link.abort.abort();
        return;
      }
      attempt = unauthorized = emptyLinks = 0;
      if (link === current) {
        for (const request of wanted.values())
          if (!where.has(request.channel)) openOn(session, link, request);
      }
      retire();
    } else if (type === REAUTH_EVENT) renew(link);
  };

  /** Opens the next stream with a fresh token; this one stays until its channels have moved. */
  const renew = (link: Link): void => {
    if (link.renewing || link !== current) return;
    link.renewing = true;
    connect();
  };

  /** Closes the streams replaced by a newer one once they carry no channel. */
  const retire = (): void => {
    for (const link of links) if (link !== current && link.channels.size === 0) link.abort.abort();
  };

  const drop = (channel: string): Link | undefined => {
    const link = where.get(channel);
    wanted.delete(channel);
    where.delete(channel);
    link?.channels.delete(channel);
    return link;
  };

  const post = (session: Session, link: Link, body: Record<string, unknown>): Promise<Response> =>
    session.fetch(`${session.root}v1/channels`, {
      method: 'POST',
      headers: headers(link.token, { 'content-type': 'application/json' }),
      body: JSON.stringify({ connectionId: link.id, secret: link.secret, ...body }),
      credentials: session.credentials,
    });

  const openOn = (session: Session, link: Link, request: OpenRequest): void => {
    const { channel, tab: _tab, types, tags, ...rest } = request;
    where.set(channel, link);
    link.channels.add(channel);
    opening.add(channel);
    const body = {
      action: 'open',
      channel,
      ...rest,
      // Left out rather than empty: none is every type, every tag value.
      ...(types.length ? { types } : {}),
      ...(Object.keys(tags).length ? { tags } : {}),
    };
    post(session, link, body).then(
      async (response) => {
        opening.delete(channel);
        if (where.get(channel) !== link) {
          // Closed while it was being opened: the close could not name it yet.
          if (response.ok) post(session, link, { action: 'close', channel }).catch(() => {});
          return;
        }
        if (response.ok) {
          notify({ t: 'opened', channel });
          return;
        }
        const refusal = await problemOf(response);
        if (where.get(channel) !== link) return;
        if (refusal.status === 401) {
          // The stream's token is stale: the next stream opens it, with a fresh one.
          where.delete(channel);
          link.channels.delete(channel);
          renew(link);
          return;
        }
        if (refusal.code === 'connection-not-found' || refusal.code === 'not-your-stream') {
          link.abort.abort(); // the shared stream is gone at the hub: its end tells every channel
          return;
        }
        drop(channel);
        if (refusal.status !== 408 && refusal.status !== 429 && refusal.status < 500) {
          // Refused for good (too many channels, a grant, a cookie from an origin not allowed to
          // POST): the tab streams on its own, as it would without sharing, and gets the
          // refusal that applies to its own stream, if any.
          notify({ t: 'unshared', channels: [channel], reason: refusal.message });
          return;
        }
        notify({
          t: 'failed',
          channel,
          status: refusal.status,
          detail: refusal.message,
          ...(refusal.code ? { code: refusal.code } : {}),
          retryAfterMs: refusal.retryAfterMs,
        });
      },
      () => {
        opening.delete(channel);
        // No answer: whether the hub has the channel is unknown, nor whether the stream is alive.
        if (where.get(channel) === link) link.abort.abort();
      },
    );
  };

  const ended = (link: Link, error?: unknown): void => {
    links.delete(link);
    const channels = [...link.channels];
    for (const channel of channels) {
      wanted.delete(channel);
      where.delete(channel);
    }
    link.channels.clear();
    const reason =
      error === undefined || link.abort.signal.aborted
        ? link.silent
          ? 'the shared stream went silent'
          : 'the shared stream ended'
        : error instanceof Error
          ? error.message
          : String(error);
    if (channels.length) notify({ t: 'ended', channels, reason });
    if (stopped || link !== current) return;
    current = undefined;
    const refusal = error instanceof HeraldClientError ? error : undefined;
    if (link.silent && !link.bytes) emptyLinks++;
    // A hub without shared streams (it wants a topic), a proxy that is not a stream, a credential
    // refused: each tab streams on its own, which also finds the precise reason and long-polls.
    if (
      emptyLinks >= EMPTY_LINKS_BEFORE_UNSHARING ||
      (refusal &&
        refusal.status !== 401 &&
        refusal.status !== 408 &&
        refusal.status !== 429 &&
        refusal.status < 500)
    ) {
      unshared = refusal?.message ?? reason;
      notify({ t: 'unshared', reason: unshared });
      return;
    }
    if (refusal?.status === 401 && unauthorized++ === 0) {
      connect(); // at once, with a fresh token
      return;
    }
    const session = settings();
    const { initialMs = 500, maxMs = 30_000 } = session?.options.backoff ?? {};
    const delay = (retryHint ?? 0) + backoffDelay(attempt++, retryHint ?? initialMs, maxMs);
    retryTimer = setTimeout(
      () => {
        retryTimer = undefined;
        // Opened on demand: a channel asked for meanwhile opens it, else the next one will.
        if (wanted.size > 0) connect();
      },
      Math.max(delay, refusal?.retryAfterMs ?? 0),
    );
  };

  const close = (channel: string): void => {
    const inFlight = opening.has(channel);
    const link = drop(channel);
    const session = settings();
    // The last channel of a replaced stream: closing that stream closes it (the hub may have
    // closed both already, at the old token's expiry, and would answer a 404).
    if (link && link !== current && link.channels.size === 0) link.abort.abort();
    else if (link?.id && session && !inFlight)
      post(session, link, { action: 'close', channel }).catch(() => {});
  };

  return {
    open(request) {
      if (stopped) return;
      if (unshared !== undefined) {
        notify({ t: 'unshared', channels: [request.channel], reason: unshared });
        return;
      }
      // Asked again (a new leader was announced meanwhile): the later request wins; on the same
      // stream the hub replaces the channel itself.
      const previous = where.get(request.channel);
      if (previous && previous !== current) close(request.channel);
      else drop(request.channel);
      wanted.set(request.channel, request);
      const session = settings();
      if (current?.id && session) openOn(session, current, request);
      else if (!current && retryTimer === undefined) connect();
    },
    close,
    forget(tab) {
      for (const request of [...wanted.values()]) if (request.tab === tab) close(request.channel);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      clearTimeout(retryTimer);
      clearInterval(watchTimer);
      const channels = [...where.keys(), ...wanted.keys()];
      wanted.clear();
      where.clear();
      if (channels.length)
        notify({
          t: 'ended',
          channels: [...new Set(channels)],
          reason: 'the tab holding the shared stream left',
        });
      for (const link of links) {
        link.channels.clear();
        link.abort.abort();
      }
    },
  };
}
