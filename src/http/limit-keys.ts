/**
 * The names limits are counted under on the broker, shared by every node. Tenants and subjects
 * are the issuers' strings (a subject may hold `:`, quotes, anything a JWT string may), so each
 * name is written as a JSON array after a fixed prefix: JSON strings are quoted and escaped, so
 * no tenant or subject, or pair of them, can spell another's key (tenant `a:b` is
 * `["a:b"]`, tenant `a` with subject `b` is `["a","b"]`, under another prefix besides).
 */

/** Open streams of a tenant, on every node. */
export const tenantStreamsKey = (tenant: string): string => `streams:tenant:${JSON.stringify([tenant])}`;

/** Open streams of a subject, which is named within its tenant (two issuers may both have an `alice`). */
export const subjectStreamsKey = (tenant: string, subject: string): string =>
  `streams:subject:${JSON.stringify([tenant, subject])}`;

/**
 * Events published by a credential: its subject within its tenant, else its tenant's tokens
 * without one; a string is a bucket's name as the caller gave it.
 */
export function publishesKey(
  credential: string | { readonly tenant: string; readonly subject?: string | undefined },
): string {
  if (typeof credential === 'string') return `publishes:key:${JSON.stringify([credential])}`;
  return credential.subject === undefined
    ? `publishes:tenant:${JSON.stringify([credential.tenant])}`
    : `publishes:subject:${JSON.stringify([credential.tenant, credential.subject])}`;
}
