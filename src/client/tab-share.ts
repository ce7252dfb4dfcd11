import { HeraldClientError } from './errors.ts';
import { onEvent } from './events.ts';
import { createMux, type Mux, type Notice, type OpenRequest } from './mux.ts';
import { type Connection, type Session, tokenFor } from './session.ts';

/**
 * One stream for all the tabs of an origin. The clients of every tab that share a hub and a
 * credential form a group, named `herald:<hash of both>`: the tab holding the Web Lock of that
 * name is the leader and holds the shared stream (mux.ts); each client connection, in any tab, is
 * a channel of it, asked for and relayed over a BroadcastChannel of the same name. For the
 * client's lifecycle (client.ts) a channel is a connection like a stream: it opens from the
 * client's own last id, ends when the shared stream or the leader goes, and is reconnected from
 * that id again, so a change of leader loses and repeats nothing. Loaded only where it is used.
 *
 * Each group also holds a lock of its own (`<name>:tab:<id>`), which the leader waits for: it is
 * granted when that tab is gone, closed or crashed, and the leader then closes its channels.
 *
 * A tab leaves the group when its last client closes; the leader tab, though, only once no other
 * tab has a channel on its stream (see `retireWhenIdle`).
 */

type Request = { t: 'open'; request: OpenRequest } | { t: 'close'; channel: string };
/** A notice as sent: with the leader that sent it. */
type Sent = Notice & { leader: string };
type Message = Request | Sent | { t: 'leader'; leader: string };

interface Endpoint {
  readonly session: Session;
  readonly connection: Connection;
  readonly request: OpenRequest;
  /** The leader whose stream carries it, once it has heard from one. */
  leader?: string;
  readonly settle: (error?: unknown) => void;
}

interface Group {
  readonly name: string;
  readonly sessions: Set<Session>;
  /** This tab's id in the group; channel ids start with it. */
  readonly tab: string;
  /** Held once the tab lock is: a leader can tell when this tab goes. */
  readonly ready: Promise<void>;
  attach(endpoint: Endpoint): void;
  detach(channel: string): void;
  leave(session: Session): void;
  /** Set once sharing is off for the whole group. */
  unshared?: string;
}

const groups = new Map<string, Group>();
const sessionGroups = new WeakMap<Session, Group>();
let channels = 0;

const randomId = (): string => Math.random().toString(36).slice(2, 10) + Date.now().toString(36).slice(-4);

/** A 53-bit string hash (cyrb53): names a group without putting any part of a token in it. */
const hash = (text: string): string => {
  let a = 0xdeadbeef;
  let b = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    a = Math.imul(a ^ code, 2654435761);
    b = Math.imul(b ^ code, 1597334677);
  }
  a = Math.imul(a ^ (a >>> 16), 2246822507) ^ Math.imul(b ^ (b >>> 13), 3266489909);
  b = Math.imul(b ^ (b >>> 16), 2246822507) ^ Math.imul(a ^ (a >>> 13), 3266489909);
  return (2097152 * (b >>> 0) + (a >>> 11)).toString(36);
};

/**
 * Who the token says the holder is: a JWT's claims but those a renewal changes (so every token of
 * one user names the same group), else the token itself.
 */
const identity = (token: string | undefined): string => {
  if (!token) return '';
  const [, claims, signature] = token.split('.');
  if (claims !== undefined && signature !== undefined) {
    try {
      const {
        iat: _iat,
        exp: _exp,
        nbf: _nbf,
        jti: _jti,
        ...who
      } = JSON.parse(atob(claims.replace(/-/g, '+').replace(/_/g, '/')));
      return JSON.stringify(who);
    } catch {
      // Not a JWT after all: the token names the group.
    }
  }
  return token;
};

/** An error that makes the client stream on its own (client.ts falls back on it). */
const unsharedError = (reason: string): Error => Object.assign(new Error(reason), { unshared: true });

const createGroup = (name: string): Group => {
  const locks = (globalThis.navigator as Navigator).locks;
  const channel = new BroadcastChannel(name);
  const tab = randomId();
  const endpoints = new Map<string, Endpoint>();
  const sessions = new Set<Session>();
  const stop = new AbortController();
  let leader: string | undefined;
  let mux: Mux | undefined;
  let closed = false;
  /** The last client of this tab to leave: whose settings a leader with no client left streams with. */
  let kept: Session | undefined;
  let releaseTab: () => void = () => {};
  let releaseLead: () => void = () => {};
  const watched = new Set<string>();
  /** As the leader: the channels of other tabs on its stream, by their tab, until that tab closes them. */
  const relayed = new Map<string, string>();

  const post = (message: Message): void => {
    if (closed) return;
    try {
      channel.postMessage(message);
    } catch {
      // Closed under it: nobody is listening any more.
    }
  };

  const end = (endpoint: Endpoint, error?: unknown): void => {
    const { channel: id } = endpoint.request;
    endpoints.delete(id);
    // Told the leader, after what was relayed before this end was handled: see `retireWhenIdle`.
    request({ t: 'close', channel: id });
    endpoint.settle(error);
  };

  /** A notice of the leader, this tab's own or another's. */
  const receive = (message: Sent | { t: 'leader'; leader: string }): void => {
    if (message.t === 'leader') {
      leader = message.leader;
      for (const endpoint of [...endpoints.values()]) {
        if (endpoint.leader === undefined) request({ t: 'open', request: endpoint.request });
        else if (endpoint.leader !== leader)
          end(endpoint, new Error('the tab holding the shared stream left'));
      }
      return;
    }
    leader ??= message.leader;
    if (message.leader !== leader) return; // a late word of a leader that has gone
    switch (message.t) {
      case 'event': {
        const endpoint = endpoints.get(message.channel);
        if (!endpoint) return;
        endpoint.leader = leader;
        const { session, connection } = endpoint;
        connection.bytes = true;
        session.watchdog.touch(connection);
        onEvent(session, connection, message);
        return;
      }
      case 'opened': {
        const endpoint = endpoints.get(message.channel);
        if (endpoint) endpoint.leader = leader;
        return;
      }
      case 'beat':
        for (const { session, connection } of endpoints.values()) {
          connection.bytes = true;
          session.watchdog.touch(connection);
        }
        return;
      case 'failed': {
        const endpoint = endpoints.get(message.channel);
        const { status, detail, code, retryAfterMs } = message;
        if (endpoint) end(endpoint, new HeraldClientError(status, detail, code, retryAfterMs));
        return;
      }
      case 'ended':
        for (const id of message.channels) {
          const endpoint = endpoints.get(id);
          if (endpoint) end(endpoint, new Error(message.reason));
        }
        return;
      case 'unshared': {
        if (!message.channels) group.unshared = message.reason;
        for (const id of message.channels ?? [...endpoints.keys()]) {
          const endpoint = endpoints.get(id);
          if (endpoint) end(endpoint, unsharedError(message.reason));
        }
      }
    }
  };

  const request = (message: Request): void => {
    if (mux) handle(message);
    else post(message);
  };

  /** Out of the group: the lock goes to the next tab, which opens a stream of its own. */
  const retire = (): void => {
    // First: the stop's notices end endpoints, whose closes come back to `retireWhenIdle`.
    stop.abort();
    mux?.stop();
    mux = undefined;
    closed = true;
    groups.delete(name);
    releaseLead();
    releaseTab();
    channel.close();
  };

  /**
   * Leaves once this tab has no client and, if it leads, every other tab has closed its channels
   * (or gone). Why the leader stays on: an admin's `herald.disconnect` reaches every channel it
   * names through the one shared stream, the hub writing them all in one pass (each channel's
   * notice, then its end), but that stream is read a chunk at a time, and the leader's own client
   * shuts on its own notice (`reconnect: false`) between two reads. Cutting the stream then drops
   * the other tabs' notices not read yet; nor is a relayed notice safe once read: the next leader
   * learns of its lock from the lock manager, not the BroadcastChannel, so it may take over, and
   * give up its channel as the old leader's, before the notice reaches it. Those tabs would hear
   * only that the leader left, and come back with the credential they were told not to use; no
   * delay makes that safe, since nothing tells how much is still on its way. So the leader keeps
   * its stream and its lock, reading and relaying in order, until each tab has closed its
   * channels: a tab closes a channel that ended only once it has handled the end (`end`), so
   * after every notice relayed before it (one sender's messages arrive in order). Then nothing
   * meant for a tab is left on the stream or on its way, and the lock can pass.
   */
  const retireWhenIdle = (): void => {
    if (!stop.signal.aborted && sessions.size === 0 && relayed.size === 0) retire();
  };

  /** As the leader: a tab's request. */
  const handle = (message: Request): void => {
    if (!mux) return;
    if (message.t === 'close') {
      relayed.delete(message.channel);
      mux.close(message.channel);
      retireWhenIdle();
      return;
    }
    const { tab: owner, channel: id } = message.request;
    if (owner !== tab) relayed.set(id, owner);
    if (owner !== tab && !watched.has(owner)) {
      watched.add(owner);
      // Granted once that tab has gone: its channels have nobody to deliver to.
      locks
        .request(`${name}:tab:${owner}`, { signal: stop.signal }, () => {
          watched.delete(owner);
          mux?.forget(owner);
          for (const [id, of] of relayed) if (of === owner) relayed.delete(id);
          retireWhenIdle();
        })
        .catch(() => {});
    }
    mux.open(message.request);
  };

  const lead = (): Promise<void> => {
    const me = randomId();
    mux = createMux(
      () => sessions.values().next().value ?? kept,
      (notice) => {
        const sent = { ...notice, leader: me } as Sent;
        receive(sent);
        post(sent);
      },
    );
    receive({ t: 'leader', leader: me });
    post({ t: 'leader', leader: me });
    return new Promise<void>((resolve) => {
      releaseLead = resolve;
    });
  };

  channel.onmessage = ({ data }: MessageEvent<Message>) => {
    if (closed) return;
    if (data.t === 'open' || data.t === 'close') handle(data);
    else receive(data);
  };

  const ready = new Promise<void>((resolve, reject) => {
    locks
      .request(`${name}:tab:${tab}`, { signal: stop.signal }, () => {
        resolve();
        return new Promise<void>((release) => {
          releaseTab = release;
        });
      })
      .catch(reject);
  });
  locks.request(name, { signal: stop.signal }, lead).catch(() => {});

  const group: Group = {
    name,
    sessions,
    tab,
    ready,
    attach(endpoint) {
      endpoints.set(endpoint.request.channel, endpoint);
      // A leader the tab knows of gets it; if there is none yet, the one elected next asks again.
      if (group.unshared !== undefined) end(endpoint, unsharedError(group.unshared));
      else request({ t: 'open', request: endpoint.request });
    },
    detach(id) {
      if (endpoints.delete(id)) request({ t: 'close', channel: id });
    },
    leave(session) {
      if (!sessions.delete(session)) return;
      sessionGroups.delete(session);
      session.leave = undefined;
      if (sessions.size > 0 || closed) return;
      // The last client of this tab: its channels are closed (it has none left open when it
      // closes), and the shared stream is handed on (the next tab to take the lock opens a new one
      // and every channel reconnects through it) once no other tab's channel is left on it.
      kept = session;
      mux?.forget(tab);
      retireWhenIdle();
    },
  };
  return group;
};

/** The group of `session` for `token`: a client whose credential now names another moves to it. */
const join = (session: Session, token: string | undefined): Group => {
  const name = `herald:${hash(`${session.root}\n${identity(token)}`)}`;
  const previous = sessionGroups.get(session);
  if (previous?.name === name) return previous;
  previous?.leave(session);
  let group = groups.get(name);
  if (!group) {
    group = createGroup(name);
    groups.set(name, group);
  }
  const joined = group;
  joined.sessions.add(session);
  sessionGroups.set(session, joined);
  session.leave = () => joined.leave(session);
  return group;
};

/** The transport of a shared connection: a channel of the leader tab's stream. */
export const shared = async (session: Session, connection: Connection): Promise<void> => {
  // What the client's lifecycle believes this connection asks for: its query, read back.
  const query = new URLSearchParams(connection.query);
  const tags: Record<string, string[]> = {};
  for (const [key, value] of query) {
    if (key.startsWith('tag.')) tags[key.slice(4)] = [...(tags[key.slice(4)] ?? []), value];
  }
  const token = await tokenFor(session, connection);
  const group = join(session, token);
  if (group.unshared !== undefined) throw unsharedError(group.unshared);
  await group.ready;
  const { signal } = connection.abort;
  if (signal.aborted || session.closed) {
    if (session.closed) group.leave(session);
    return;
  }
  const sent = session.lastEventId;
  connection.sent = sent;
  const start = new URLSearchParams(sent ? '' : session.start);
  const rewind = start.get('rewind');
  const request: OpenRequest = {
    channel: `${group.tab}-${++channels}`,
    tab: group.tab,
    topics: query.getAll('topic'),
    types: query.getAll('type'),
    tags,
    ...(sent ? { lastEventId: sent } : {}),
    ...(rewind !== null ? { rewind: Number(rewind) } : {}),
    ...(start.has('since') ? { since: start.get('since') as string } : {}),
    ...(start.has('snapshot') ? { snapshot: start.get('snapshot') as string } : {}),
  };
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      group.detach(request.channel);
      if (session.closed) group.leave(session);
      resolve();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    group.attach({
      session,
      connection,
      request,
      settle(error) {
        signal.removeEventListener('abort', onAbort);
        if (error === undefined) resolve();
        else reject(error);
        // Back on its own stream: this client is no longer one of the group's.
        if ((error as { unshared?: boolean } | undefined)?.unshared) group.leave(session);
      },
    });
  });
};
