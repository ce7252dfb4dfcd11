import type { KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { openStream, type SseStream, type StreamOptions } from '../helpers/sse-client.ts';

/** The secret of the Mercure reference hub's example configuration and of its conformance suite. */
export const MERCURE_SECRET = '!ChangeThisMercureHubJWTSecretKey!';

/** Opens `/.well-known/mercure` with `topic` selectors and any other query parameters. */
export function mercureStream(
  base: string,
  topics: readonly string[],
  options: StreamOptions & { readonly query?: Record<string, string> } = {},
): Promise<SseStream> {
  const url = new URL('/.well-known/mercure', base);
  for (const topic of topics) url.searchParams.append('topic', topic);
  for (const [name, value] of Object.entries(options.query ?? {})) url.searchParams.set(name, value);
  return openStream(url.href, options);
}

export interface MercureUpdate {
  readonly topic: string | readonly string[];
  readonly data?: string;
  readonly id?: string;
  readonly type?: string;
  readonly retry?: string;
  readonly private?: boolean;
}

/** POSTs an update as a Mercure publisher does: a form, usually with a bearer token. */
export async function mercurePublish(
  base: string,
  update: MercureUpdate,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; contentType: string | null }> {
  const form = new URLSearchParams();
  for (const topic of typeof update.topic === 'string' ? [update.topic] : update.topic) {
    form.append('topic', topic);
  }
  if (update.data !== undefined) form.set('data', update.data);
  if (update.id !== undefined) form.set('id', update.id);
  if (update.type !== undefined) form.set('type', update.type);
  if (update.retry !== undefined) form.set('retry', update.retry);
  if (update.private === true) form.set('private', 'on');
  const response = await fetch(new URL('/.well-known/mercure', base), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: form,
  });
  return {
    status: response.status,
    body: await response.text(),
    contentType: response.headers.get('content-type'),
  };
}

export interface MercureClaim {
  readonly publish?: readonly string[];
  readonly subscribe?: readonly string[];
  readonly payload?: unknown;
}

/** A token with a `mercure` claim, HS256 with `secret` unless a private `key` (and its `alg`) is given. */
export async function mercureToken(
  claim: MercureClaim,
  options: { secret?: string; key?: CryptoKey | KeyObject; alg?: string; expiresIn?: number } = {},
): Promise<string> {
  const { secret = MERCURE_SECRET, key, alg = 'HS256', expiresIn } = options;
  const jwt = new SignJWT({ mercure: claim }).setProtectedHeader({ alg });
  if (expiresIn !== undefined) jwt.setExpirationTime(Math.floor(Date.now() / 1000) + expiresIn);
  return jwt.sign(key ?? new TextEncoder().encode(secret));
}

export const bearer = (jwt: string) => ({ authorization: `Bearer ${jwt}` });
