import { redactUrl } from '../redact-url.ts';
import { ErrorReply, type RedisClient, redisClient } from './client.ts';

/** Bounds the one-off connection of `persistenceWarning`. */
const CONNECT_TIMEOUT_MS = 2000;

/**
 * What a Redis server's persistence can lose, as a warning for the operator's log at start, or
 * undefined when it keeps an append-only file (with `appendfsync always` nothing acknowledged is
 * lost; with `everysec` or `no`, a crash of the machine, not of Redis, can lose the last second or
 * so). Tolerates a server where CONFIG is disabled (managed Redis): then INFO tells whether the
 * append-only file is on. Rejects only when Redis cannot be reached.
 */
export async function persistenceWarning(url: string): Promise<string | undefined> {
  const client = redisClient({ url, resp2: true, connectTimeoutMs: CONNECT_TIMEOUT_MS, once: true });
  client.on('error', () => {});
  try {
    await client.connect();
    return await persistenceOf(client, url);
  } finally {
    if (client.isOpen) client.destroy();
  }
}

type AnyClient = Pick<RedisClient, 'sendCommand'>;

export async function persistenceOf(client: AnyClient, url: string): Promise<string | undefined> {
  const where = `Redis at ${redactUrl(url)}`;
  const consequence =
    'Herald notices the lost log and tells resuming clients with herald.gap "reset", but those events are gone. ' +
    'To lose nothing, run Redis with appendonly yes and appendfsync always';
  let config: Map<string, string>;
  try {
    const reply = [
      ...((await client.sendCommand(['CONFIG', 'GET', 'append*'])) as unknown[]),
      ...((await client.sendCommand(['CONFIG', 'GET', 'save'])) as unknown[]),
    ];
    config = new Map();
    for (let i = 0; i + 1 < reply.length; i += 2) config.set(String(reply[i]), String(reply[i + 1]));
  } catch (error) {
    if (!(error instanceof ErrorReply)) throw error;
    // CONFIG renamed or refused (managed Redis): INFO tells whether the append-only file is on.
    const info = String(await client.sendCommand(['INFO', 'persistence']).catch(() => ''));
    const aof = /^aof_enabled:(\d)/m.exec(info)?.[1];
    if (aof === '1') return undefined;
    if (aof === undefined)
      return `${where}: could not tell its persistence (CONFIG and INFO refused). ${consequence}`;
    return (
      `${where} keeps no append-only file (INFO persistence; CONFIG is not available to tell its RDB snapshots): ` +
      `a Redis restart loses the events since the last snapshot, or the whole log without one. ${consequence}`
    );
  }
  if (config.get('appendonly') === 'yes') return undefined;
  const save = config.get('save') ?? '';
  if (save.trim() === '') {
    return (
      `${where} keeps no persistence (appendonly no, save ""): a Redis restart loses the whole event ` +
      `history, and the events not yet delivered. ${consequence}`
    );
  }
  return (
    `${where} keeps only RDB snapshots (appendonly no, save "${save}"): a Redis restart loses the events ` +
    `appended since the last snapshot. ${consequence}`
  );
}
