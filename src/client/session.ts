import type { ClientOptions, ClientStatus, GapInfo, Handler, HeraldMessage, HistoryInfo } from './api.ts';
import type { RecentIds } from './dedup.ts';
import type { HeraldClientError } from './errors.ts';
import type { Watchdog } from './watchdog.ts';

/**
 * What the parts of one client share: its settings, its state, and the steps that more than one
 * part takes (the connection's lifecycle is client.ts's; streams, polls, events and subscription
 * changes each have a file of their own and act through this).
 */
export interface Session {
  readonly options: ClientOptions;
  /** The hub's base URL, ending with one slash, so `v1/events` resolves below it. */
  readonly root: string;
  /** The history parameters (`&rewind=…`), sent by a connection with no id to resume from; '' for none. */
  readonly start: string;
  readonly credentials: RequestCredentials;
  readonly fetch: typeof fetch;
  /** How long a connection may stay silent before the watchdog gives it up, ms. */
  readonly watchLimit: number;
  readonly parse: (raw: string, type: string) => unknown;
  readonly connections: Set<Connection>;
  readonly handlers: Map<string, Set<Handler<HeraldMessage<never>>>>;
  readonly gapHandlers: Set<Handler<GapInfo>>;
  readonly historyHandlers: Set<Handler<HistoryInfo>>;
  readonly recent: RecentIds;
  readonly watchdog: Watchdog<Connection>;

  /** The topic selectors the client wants (what the next connection asks for). */
  topics: string[];
  /** The event types it wants; empty for every type. */
  types: string[];
  /** The tag values it wants, by name; a name left out takes any value. */
  tags: Record<string, string[]>;
  lastEventId: string | undefined;
  /** The open stream's id (from `herald.connected`). */
  connectionId: string | undefined;
  /** Long polling instead of streaming. */
  polling: boolean;
  closed: boolean;
  /** Reconnections since the last success, for the backoff. */
  attempt: number;
  /** 401s in a row: a second one closes the client. */
  unauthorized: number;
  /** Streams that stayed silent from the start: enough of them and the client long-polls. */
  emptyStreams: number;
  /** The hub's `retry:`, a floor under the reconnection delay. */
  retryHint: number | undefined;
  /**
   * The tab-shared stream's transport (a channel of the leader tab's stream), while tab sharing is
   * on; undefined once it is off (unsupported here, or refused by the hub).
   */
  share: ((session: Session, connection: Connection) => Promise<void>) | undefined;
  /** Takes the client out of its tab-sharing group, if it is in one. */
  leave: (() => void) | undefined;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  probeTimer: ReturnType<typeof setTimeout> | undefined;

  /** The query string of a connection: topics and filters. */
  query(): string;
  /** Keeps `id` as where the next connection resumes from. */
  remember(id: string): void;
  setStatus(next: ClientStatus, why?: string, error?: HeraldClientError): void;
  /** Opens a connection; `overlap` keeps the others until it is connected (token refresh, probe). */
  open(overlap?: boolean, probe?: boolean): void;
  /** Opens a stream with the current topics unless one is already on its way. */
  resync(): void;
  /** The watchdog gave `connection` up. */
  expire(connection: Connection): void;
}

/** One HTTP connection: a stream, an EventSource, or a sequence of long polls. */
export interface Connection {
  readonly abort: AbortController;
  readonly poll: boolean;
  /** A stream tried while polling: its failure is quiet, its success ends the polling. */
  probe: boolean;
  /** The query it was opened with (topics and filters), to tell whether the topics changed since. */
  readonly query: string;
  /** The Last-Event-ID it was opened with. */
  sent?: string | undefined;
  token?: string | undefined;
  /** `herald.connected`'s connectionId. */
  id?: string;
  /** `herald.connected`'s secret: what proves a subscription change comes from this stream's holder. */
  secret?: string;
  /** Delivering the history it asked for, until `herald.history`: its ids are no resume point. */
  history?: boolean;
  /** Any byte received. */
  bytes?: boolean;
  /** Given up by the watchdog. */
  silent?: boolean;
  /** A successor was opened after `herald.reauth`. */
  renewing?: boolean;
  /** An admin ended it (`herald.disconnect`): why, and whether the client may come back. */
  disconnect?: { readonly reason: string; readonly reconnect: boolean };
  /** For EventSource: the types listened to. */
  listen?: (type: string) => void;
}

/** Reports a handler's exception without breaking the stream, as EventTarget does. */
export const report = (error: unknown): void => {
  setTimeout(() => {
    throw error;
  });
};

/** Calls every handler of `set` with `value`; one that throws is reported and the others still run. */
export const emit = <T>(set: Set<Handler<T>> | undefined, value: T): void => {
  if (set) {
    for (const handler of [...set]) {
      try {
        handler(value);
      } catch (error) {
        report(error);
      }
    }
  }
};

/** The token for `connection` (the option, or what its function gives now), kept on it. */
export const tokenFor = async (session: Session, connection: Connection): Promise<string | undefined> => {
  const value = session.options.token;
  connection.token = typeof value === 'function' ? await value() : value;
  return connection.token;
};

export const headers = (
  bearer: string | undefined,
  extra?: Record<string, string>,
): Record<string, string> => (bearer ? { ...extra, authorization: `Bearer ${bearer}` } : { ...extra });

export const endpoint = (session: Session, path: string, params: string, extra = ''): string =>
  `${session.root}v1/${path}?${params}${extra}`;
