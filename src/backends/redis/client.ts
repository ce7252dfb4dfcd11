// The client is an optional peer dependency, loaded at run time by Node from the app's
// node_modules: the comments keep app bundlers (Next.js) from resolving it at build time, where
// an app on the memory broker does not have it.
const { createClient, ErrorReply } = await import(
  /* webpackIgnore: true */ /* turbopackIgnore: true */ 'redis'
);

export { ErrorReply };

/**
 * Every Redis connection Herald opens (the broker's, the bridges', the persistence check's) is
 * made here, so they all reconnect the same way: once up, forever, backing off from 50 ms to a
 * second (delivery resumes within about a second of Redis coming back); the first connection
 * only for as long as its caller allows, so that a start fails with the reason instead of hanging.
 */
export interface RedisClientSettings {
  /** `redis[s]://[[user]:password@]host[:port][/db]`. */
  readonly url: string;
  /** The connection's name in CLIENT LIST. */
  readonly name?: string;
  /**
   * RESP2: flat array replies whatever the server version (the broker's scripts read them as
   * arrays). Default: node-redis's (RESP3).
   */
  readonly resp2?: boolean;
  /**
   * While disconnected, fail commands at once instead of queueing them: a command that would
   * run minutes later, after its caller was told nothing, or a lease renewal that arrives late.
   */
  readonly failFast?: boolean;
  readonly connectTimeoutMs: number;
  /** How long a command waits for its answer, ms. Default: node-redis's (none). */
  readonly commandTimeoutMs?: number;
  /**
   * How long the first connection keeps trying before `connect()` rejects, ms. 0: it fails at the
   * first refusal (and the caller may try again on next use).
   */
  readonly firstConnectMs?: number;
  /** Never reconnect: a one-off connection that is closed right after its use. */
  readonly once?: boolean;
}

/** Reconnection backoff: the first step, then doubling up to the cap, plus as much jitter. */
const FIRST_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 1000;

export type RedisClient = ReturnType<typeof redisClient>;

export function redisClient(settings: RedisClientSettings) {
  const startedAt = Date.now();
  let ready = false;
  const client = createClient({
    url: settings.url,
    ...(settings.name === undefined ? {} : { name: settings.name }),
    // The types are RESP2's either way: the commands Herald sends reply alike under both.
    RESP: (settings.resp2 === true ? 2 : 3) as 2,
    disableOfflineQueue: settings.failFast === true,
    ...(settings.commandTimeoutMs === undefined
      ? {}
      : { commandOptions: { timeout: settings.commandTimeoutMs } }),
    socket: {
      connectTimeout: settings.connectTimeoutMs,
      reconnectStrategy:
        settings.once === true
          ? false
          : (retries: number) => reconnectDelay(retries, ready, startedAt, settings),
    },
  });
  client.on('ready', () => {
    ready = true;
  });
  return client;
}

/** How long before the next attempt, or false to give up (a first connection out of time). */
function reconnectDelay(
  retries: number,
  wasReady: boolean,
  startedAt: number,
  settings: Pick<RedisClientSettings, 'firstConnectMs'>,
): number | false {
  if (!wasReady && Date.now() - startedAt >= (settings.firstConnectMs ?? 0)) return false;
  return (
    Math.min(FIRST_BACKOFF_MS * 2 ** Math.min(retries, 10), MAX_BACKOFF_MS) + Math.random() * FIRST_BACKOFF_MS
  );
}
