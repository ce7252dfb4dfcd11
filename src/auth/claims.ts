import { HeraldError } from '../core/errors.ts';
import { hasControlCharacter } from '../core/event.ts';
import { ALL_TENANTS, type Principal } from '../core/principal.ts';
import { ALL, parseSelector, type Selector } from '../core/topics.ts';
import { ALL_KEY_USES, type KeyUse } from './jwt.ts';

const EVERY_USE: ReadonlySet<KeyUse> = new Set(ALL_KEY_USES);

/**
 * Token claims → Principal. Herald's own claim:
 *   `{"herald": {"tenant", "subscribe": [selectors], "publish": [selectors], "permissions": [..], "admin"}}`
 * and Mercure's `{"mercure": {"subscribe": [...], "publish": [...]}}`, whose grants add to Herald's.
 * A claim of the wrong shape refuses the token (401): silently ignoring it would hand out fewer,
 * or more, rights than its issuer meant.
 *
 * `uses` are what the key that signed the token allows, and cap what the claims can grant: a
 * subscriber key's token has no publish grants and is never admin, whatever it says, so every
 * check downstream (grants, tenant, admin) holds it to its key's role without knowing of keys.
 */
export function principalFromClaims(
  claims: Readonly<Record<string, unknown>>,
  expiresAt: number | undefined,
  via: Principal['via'],
  uses: ReadonlySet<KeyUse> = EVERY_USE,
): Principal {
  const herald = claimObject(claims, 'herald');
  const mercure = claimObject(claims, 'mercure');
  const tenant = herald.tenant === undefined ? '' : tenantOf(herald.tenant);
  const admin =
    (herald.admin === undefined ? false : booleanOf(herald.admin, 'herald.admin')) && uses.has('admin');
  const subscribe = [
    ...selectors(herald.subscribe, 'herald.subscribe'),
    ...selectors(mercure.subscribe, 'mercure.subscribe'),
  ];
  const publish = [
    ...selectors(herald.publish, 'herald.publish'),
    ...selectors(mercure.publish, 'mercure.publish'),
  ];
  const principal: { -readonly [K in keyof Principal]: Principal[K] } = {
    tenant,
    subscribe: !uses.has('subscribe') ? [] : admin ? [ALL] : subscribe,
    publish: !uses.has('publish') ? [] : admin ? [ALL] : publish,
    admin,
    permissions: strings(herald.permissions, 'herald.permissions'),
  };
  if (typeof claims.sub === 'string') principal.subject = claims.sub;
  if (expiresAt !== undefined) principal.expiresAt = expiresAt;
  if (via !== undefined) principal.via = via;
  return principal;
}

const invalid = (detail: string) => new HeraldError(401, 'token-claims-invalid', `the token's ${detail}`);

function claimObject(claims: Readonly<Record<string, unknown>>, name: string): Record<string, unknown> {
  const value = claims[name];
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid(`"${name}" claim must be an object`);
  return value as Record<string, unknown>;
}

function tenantOf(value: unknown): string {
  if (typeof value !== 'string' || hasControlCharacter(value) || value.length > 256) {
    throw invalid('herald.tenant must be a string of at most 256 characters');
  }
  if (value === ALL_TENANTS)
    throw invalid(`herald.tenant "${ALL_TENANTS}" is reserved; an admin token watches all tenants`);
  return value;
}

function booleanOf(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalid(`${name} must be true or false`);
  return value;
}

function strings(value: unknown, name: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw invalid(`${name} must be an array of strings`);
  }
  return value;
}

function selectors(value: unknown, name: string): Selector[] {
  return strings(value, name).map((source) => {
    try {
      return parseSelector(source);
    } catch (error) {
      throw invalid(
        `${name} has an invalid selector: ${error instanceof HeraldError ? error.detail : String(error)}`,
      );
    }
  });
}
