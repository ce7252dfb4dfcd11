export interface PublishOptions {
  readonly url: string;
  readonly topic: readonly string[];
  readonly data: string;
  readonly type?: string;
  readonly id?: string;
  readonly key?: string;
  readonly priority?: string;
  readonly tag?: readonly string[];
  readonly private?: boolean;
  readonly token?: string;
}

/**
 * `herald publish`: one event to a running hub. Resolves with the id; rejects with the server's
 * problem detail, so the CLI can print it and exit non-zero.
 */
export async function publishCommand(options: PublishOptions): Promise<string> {
  const event: Record<string, unknown> = {
    topic: options.topic.length === 1 ? options.topic[0] : options.topic,
  };
  // `--data` is JSON when it parses as JSON, and a plain string otherwise.
  try {
    event.data = JSON.parse(options.data);
  } catch {
    event.data = options.data;
  }
  if (options.type !== undefined) event.type = options.type;
  if (options.id !== undefined) event.id = options.id;
  if (options.key !== undefined) event.key = options.key;
  if (options.priority !== undefined) event.priority = options.priority;
  if (options.private) event.private = true;
  if (options.tag !== undefined && options.tag.length > 0) event.tags = parseTags(options.tag);

  const response = await fetch(new URL('/v1/publish', options.url), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    },
    body: JSON.stringify(event),
  });
  const text = await response.text();
  const body = parseJson(text);
  if (!response.ok) {
    const detail = typeof body?.detail === 'string' ? body.detail : text || response.statusText;
    throw new Error(`${response.status}: ${detail}`);
  }
  return String(body?.id);
}

/** `name=value` pairs from repeated `--tag` flags. */
export function parseTags(pairs: readonly string[]): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const pair of pairs) {
    const equals = pair.indexOf('=');
    if (equals <= 0) throw new Error(`--tag ${JSON.stringify(pair)} must be name=value`);
    tags[pair.slice(0, equals)] = pair.slice(equals + 1);
  }
  return tags;
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
