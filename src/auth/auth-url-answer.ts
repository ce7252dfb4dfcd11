import { HeraldError } from '../core/errors.ts';
import { hasControlCharacter } from '../core/event.ts';
import { ALL_TENANTS, type Principal } from '../core/principal.ts';
import { ALL, parseSelector, type Selector } from '../core/topics.ts';

/**
 * What the app's auth endpoint (`--auth-url`) answered, read into a Principal, or the refusal it
 * stands for. The answer is read as strictly as a token's claims (./claims.ts): a grant of the
 * wrong shape is a broken endpoint, not a smaller or larger grant, so it fails the request (503,
 * the operator's to fix) rather than letting it through with rights nobody meant.
 */

/** A caller the app let in, and until when Herald may reuse that answer (ms since the epoch). */
export interface Allowed {
  readonly principal: Principal;
  readonly expiresAt: number | undefined;
}

export const HOOK_CHALLENGE = 'Bearer realm="herald"';

/** How many characters of the app's `reason` reach the client. */
const MAX_REASON = 200;

export interface AnswerRules {
  /** Whether an answer may make the caller an admin of every tenant. */
  readonly allowAdmin: boolean;
  /** Seconds a 503 asks the client to wait. */
  readonly retryAfterSec: number;
  /** How the credential came, for the cookie Origin check of state-changing requests. */
  readonly via: Principal['via'];
  readonly now: number;
}

/** 401 or 403 for an app that said no, with its reason when it gave one. */
export function denied(status: 401 | 403, reason?: unknown): HeraldError {
  const said =
    typeof reason === 'string' && reason.trim() !== ''
      ? `: ${reason.replace(/\p{Cc}/gu, ' ').slice(0, MAX_REASON)}`
      : '';
  return new HeraldError(status, 'auth-denied', `the app refused this request${said}`, {
    headers: status === 401 ? { 'www-authenticate': HOOK_CHALLENGE } : {},
  });
}

/** 503 for an endpoint that did not answer usefully; `why` is for the operator's log, not the client. */
export function unavailable(retryAfterSec: number, why: string): HeraldError {
  const error = new HeraldError(
    503,
    'auth-unavailable',
    "the app's auth endpoint did not answer in time or failed; try again shortly",
    { headers: { 'retry-after': String(retryAfterSec) } },
  );
  error.cause = new Error(why);
  return error;
}

function invalidAnswer(retryAfterSec: number, why: string): HeraldError {
  const error = new HeraldError(
    503,
    'auth-answer-invalid',
    `the app's auth endpoint answered something Herald cannot use (${why}); its operator has to fix it`,
    { headers: { 'retry-after': String(retryAfterSec) } },
  );
  error.cause = new Error(`the auth endpoint's answer: ${why}`);
  return error;
}

/**
 * The body of a 2xx answer: `{"allow": true, "tenant", "subject", "subscribe", "publish",
 * "permissions", "admin", "expiresIn" | "expiresAt"}` lets the caller in, `{"allow": false,
 * "reason"}` refuses it (403). Anything else throws a 503 `auth-answer-invalid`.
 */
export function readAnswer(text: string, rules: AnswerRules): Allowed {
  const bad = (why: string) => invalidAnswer(rules.retryAfterSec, why);
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  if (typeof answer !== 'object' || answer === null || Array.isArray(answer)) throw bad('not a JSON object');
  const fields = answer as Record<string, unknown>;
  if (fields.allow === false) throw denied(403, fields.reason);
  if (fields.allow !== true) throw bad('"allow" must be true or false');
  const admin = fields.admin === undefined ? false : booleanOf(fields.admin, 'admin', bad);
  if (admin && !rules.allowAdmin) {
    throw bad(
      '"admin": true, which an auth endpoint may only grant when the hub is told it may (allowAdmin)',
    );
  }
  const expiresAt = expiryOf(fields, rules.now, bad);
  const principal: { -readonly [K in keyof Principal]: Principal[K] } = {
    tenant: fields.tenant === undefined ? '' : tenantOf(fields.tenant, bad),
    subscribe: admin ? [ALL] : selectors(fields.subscribe, 'subscribe', bad),
    publish: admin ? [ALL] : selectors(fields.publish, 'publish', bad),
    admin,
    permissions: strings(fields.permissions, 'permissions', bad),
  };
  if (admin) {
    // Read anyway: a malformed grant beside admin is as broken as one without.
    selectors(fields.subscribe, 'subscribe', bad);
    selectors(fields.publish, 'publish', bad);
  }
  if (fields.subject !== undefined) principal.subject = shortText(fields.subject, 'subject', bad);
  if (expiresAt !== undefined) principal.expiresAt = expiresAt;
  if (rules.via !== undefined) principal.via = rules.via;
  return { principal, expiresAt };
}

type Bad = (why: string) => HeraldError;

/** `expiresIn` (seconds from now) or `expiresAt` (seconds since the epoch, as a JWT's `exp`). */
function expiryOf(fields: Record<string, unknown>, now: number, bad: Bad): number | undefined {
  const { expiresIn, expiresAt } = fields;
  if (expiresIn !== undefined && expiresAt !== undefined) throw bad('both "expiresIn" and "expiresAt"');
  if (expiresIn !== undefined) {
    if (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn) || expiresIn <= 0) {
      throw bad('"expiresIn" must be a number of seconds, more than 0');
    }
    return now + expiresIn * 1000;
  }
  if (expiresAt !== undefined) {
    if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) {
      throw bad('"expiresAt" must be a time in seconds since the epoch');
    }
    if (expiresAt * 1000 <= now) throw bad('"expiresAt" is already past');
    return expiresAt * 1000;
  }
  return undefined;
}

function tenantOf(value: unknown, bad: Bad): string {
  const tenant = shortText(value, 'tenant', bad);
  if (tenant === ALL_TENANTS)
    throw bad(`"tenant": "${ALL_TENANTS}" is reserved for admins watching every tenant`);
  return tenant;
}

function shortText(value: unknown, name: string, bad: Bad): string {
  if (typeof value !== 'string' || hasControlCharacter(value) || value.length > 256) {
    throw bad(`"${name}" must be a string of at most 256 characters`);
  }
  return value;
}

function booleanOf(value: unknown, name: string, bad: Bad): boolean {
  if (typeof value !== 'boolean') throw bad(`"${name}" must be true or false`);
  return value;
}

function strings(value: unknown, name: string, bad: Bad): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw bad(`"${name}" must be an array of strings`);
  }
  return value;
}

function selectors(value: unknown, name: string, bad: Bad): Selector[] {
  return strings(value, name, bad).map((source) => {
    try {
      return parseSelector(source);
    } catch (error) {
      throw bad(
        `"${name}" has an invalid selector: ${error instanceof HeraldError ? error.detail : String(error)}`,
      );
    }
  });
}
