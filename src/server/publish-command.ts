import { EVENT_FIELDS } from '../core/protocol/fields.ts';
import { maskUrl } from './masking.ts';
import { refused, unreachable } from './messages.ts';

/** Where `publish`, `listen` and `health` find the hub unless told: `--url`, else HERALD_URL, else this. */
export const DEFAULT_HUB_URL = 'http://127.0.0.1:8080';

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
 * `herald publish`: one event to a running hub. Resolves with the id; rejects with the hub's URL
 * and the server's problem detail, or why the hub could not be reached, and what to try, so the
 * CLI can print it and exit non-zero.
 */
export async function publishCommand(options: PublishOptions): Promise<string> {
  const event = publishBody(options);

  const url = new URL('/v1/publish', options.url);
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      },
      body: JSON.stringify(event),
    });
    text = await response.text();
  } catch (error) {
    throw unreachable(url, error);
  }
  const body = parseJson(text);
  if (!response.ok) {
    const isProblem = typeof body?.detail === 'string';
    const detail = isProblem ? String(body?.detail) : response.statusText || 'no detail';
    throw refused(url, response.status, detail, isProblem);
  }
  if (typeof body?.id !== 'string') {
    throw new Error(
      `${maskUrl(String(url))} answered ${response.status} without an event id: is --url (HERALD_URL) a Herald hub's address?`,
    );
  }
  return body.id;
}

/** The publish's JSON: each option that a field's row in `EVENT_FIELDS` names (`cli`) sets that field. */
export function publishBody(options: PublishOptions): Record<string, unknown> {
  const event: Record<string, unknown> = {};
  for (const field of Object.values(EVENT_FIELDS)) {
    if (!('cli' in field)) continue;
    const value = options[field.cli];
    if (value === undefined || value === false) continue;
    if (field.input === 'topic') event.topic = options.topic.length === 1 ? options.topic[0] : options.topic;
    else if (field.input === 'data') event.data = jsonOrText(options.data);
    else if (field.input === 'tags') {
      if (options.tag !== undefined && options.tag.length > 0) event.tags = parseTags(options.tag);
    } else event[field.input] = value;
  }
  return event;
}

/** `--data` is JSON when it parses as JSON, and a plain string otherwise. */
function jsonOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
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
