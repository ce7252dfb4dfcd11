/**
 * Which content coding a stream is sent in: what Herald can send, what a `compression` option
 * offers, the choice for a request's `Accept-Encoding` (RFC 9110 §12.5.3), and the headers that
 * say it. The compressing itself is compression.ts.
 */

/** The content codings Herald can send, in the order it prefers them when a client accepts several. */
export const CONTENT_CODINGS = ['gzip', 'deflate', 'br'] as const;
export type ContentCoding = (typeof CONTENT_CODINGS)[number];

/**
 * `compression` of `createHerald` and the adapters: `false` (the default) sends every stream as it
 * is; `true` offers every coding in `CONTENT_CODINGS`' order; a list offers those, in its order
 * (the server's preference: the first one the client accepts wins, whatever the client's own
 * q-values say beyond 0).
 */
export type CompressionOption = boolean | readonly ContentCoding[];

/** The codings a `compression` option offers, in preference order; empty: compression is off. */
export function offeredCodings(option: CompressionOption | undefined): readonly ContentCoding[] {
  if (option === undefined || option === false) return [];
  const codings = option === true ? CONTENT_CODINGS : [...new Set(option)];
  for (const coding of codings) {
    if (!(CONTENT_CODINGS as readonly string[]).includes(coding)) {
      throw new Error(
        `compression: "${String(coding)}" is not a content coding Herald sends; use ${CONTENT_CODINGS.join(', ')}`,
      );
    }
  }
  return codings;
}

/**
 * The coding to send for a request's `Accept-Encoding`: the first of `offered` (the server's
 * order) that the client accepts with a q-value above 0, by name or through `*`; undefined for
 * identity (no header, nothing acceptable, or only codings Herald does not send). Identity is sent
 * even when the client refuses it (`identity;q=0`): an unreadable stream helps no one more than
 * an uncompressed one.
 */
export function negotiate(
  acceptEncoding: string | undefined,
  offered: readonly ContentCoding[],
): ContentCoding | undefined {
  if (acceptEncoding === undefined || offered.length === 0) return undefined;
  const weights = new Map<string, number>();
  for (const part of acceptEncoding.split(',')) {
    const [name = '', ...parameters] = part.split(';');
    const coding = name.trim().toLowerCase();
    if (coding === '') continue;
    let q = 1;
    for (const parameter of parameters) {
      const [key, value] = parameter.split('=');
      if (key?.trim().toLowerCase() === 'q') {
        const parsed = Number(value?.trim());
        // A malformed q-value is not a refusal; it is read as the default.
        if (value !== undefined && value.trim() !== '' && Number.isFinite(parsed)) q = parsed;
      }
    }
    // x-gzip is gzip (RFC 9110 §8.4.1.3).
    weights.set(coding === 'x-gzip' ? 'gzip' : coding, q);
  }
  const any = weights.get('*');
  for (const coding of offered) {
    const q = weights.get(coding) ?? any ?? 0;
    if (q > 0) return coding;
  }
  return undefined;
}

/**
 * A stream's response headers once its coding is chosen: `Content-Encoding` when it is
 * compressed, and `Vary: Accept-Encoding` whenever the hub offers compression, since the answer
 * then depends on that header (a cache must not give a gzip stream to a client that cannot read
 * it). There is never a `Content-Length` on a stream.
 */
export function withCoding(
  headers: Readonly<Record<string, string>>,
  coding: ContentCoding | undefined,
): Record<string, string> {
  const result: Record<string, string> = { ...headers };
  let varyName = 'vary';
  for (const name in result) if (name.toLowerCase() === 'vary') varyName = name;
  const vary = result[varyName];
  result[varyName] =
    vary === undefined || vary === ''
      ? 'Accept-Encoding'
      : /\baccept-encoding\b/i.test(vary)
        ? vary
        : `${vary}, Accept-Encoding`;
  if (coding !== undefined) result['content-encoding'] = coding;
  return result;
}
