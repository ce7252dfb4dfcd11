import { z } from 'zod';
import { forwardHeaderProblem } from '../auth/auth-url.ts';
import { MIN_SECRET_BYTES, weakSecretProblem } from '../auth/jwt.ts';
import {
  backendNamed,
  backendUrlPattern,
  brokerUrlHintWithSchemes,
  brokerUrlPattern,
} from '../backends/registry.ts';
import { checkedTimes } from '../cluster/roster.ts';
import { MAX_TOPIC_LENGTH } from '../core/event.ts';
import { CONTENT_CODINGS, type ContentCoding } from '../http/content-coding.ts';
import { TrustedProxies } from '../http/trust-proxy.ts';
import { LOG_LEVELS } from '../observability/logger.ts';
import { shown } from './masking.ts';
import {
  choice,
  count,
  duration,
  httpUrl,
  limit,
  list,
  listOf,
  onOff,
  pattern,
  processes,
  size,
  text,
  wholeNumber,
} from './setting-values.ts';

/**
 * What each `herald serve` setting accepts, and the checks that span several (trusted proxies,
 * secrets long enough to resist guessing). Its output is the configuration serve runs with.
 */

const JWT_ALG = /^(HS|RS|PS|ES)(256|384|512)$|^EdDSA$/;
const JWT_ALG_HINT = 'HS256, HS384, HS512, RS256…, PS256…, ES256… or EdDSA';
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const COOKIE_HINT = "letters, digits and !#$%&'*+-.^_`|~ for a cookie name";

export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;

/** Header names, repeated or comma-separated, in lower case; one that cannot be forwarded is refused. */
const headerNames = z.unknown().transform((value, ctx) => {
  if (typeof value !== 'string' && !Array.isArray(value)) {
    ctx.addIssue({ code: 'custom', message: 'must be a list of header names' });
    return z.NEVER;
  }
  const names = (Array.isArray(value) ? value.map(String) : [value])
    .flatMap((item) => item.split(','))
    .map((item) => item.trim().toLowerCase())
    .filter((item) => item !== '');
  for (const name of names) {
    const problem = forwardHeaderProblem(name);
    if (problem !== undefined) {
      ctx.addIssue({ code: 'custom', message: problem });
      return z.NEVER;
    }
  }
  return [...new Set(names)];
});

/** `off`, `on` (every coding, Herald's order) or a list of codings in the order to prefer them. */
const compressionCodings = z.unknown().transform((value, ctx): false | readonly ContentCoding[] => {
  if (value === false || /^\s*(0|false|no|off|)\s*$/i.test(String(value))) return false;
  if (value === true || /^\s*(1|true|yes|on)\s*$/i.test(String(value))) return [...CONTENT_CODINGS];
  const items = (Array.isArray(value) ? value.map(String) : String(value).split(','))
    .map((item) => item.trim().toLowerCase())
    .filter((item) => item !== '');
  for (const item of items) {
    if (!(CONTENT_CODINGS as readonly string[]).includes(item)) {
      ctx.addIssue({
        code: 'custom',
        message: `${shown(item)} is not a coding Herald sends; use off, on, or a list of ${CONTENT_CODINGS.join(', ')}`,
      });
      return z.NEVER;
    }
  }
  return [...new Set(items)] as ContentCoding[];
});

const schema = z.object({
  port: wholeNumber(0, 65_535),
  workers: processes,
  host: text,
  tlsCert: text.optional(),
  tlsKey: text.optional(),
  broker: pattern(brokerUrlPattern(), brokerUrlHintWithSchemes()),
  onBrokerDown: choice(['fail', 'local']),
  outageBuffer: count,
  outageProbe: duration(100),
  stream: pattern(/^[A-Za-z0-9_-]{1,64}$/, '1–64 letters, digits, - and _'),
  // A bridge spec may hold commas: several in the environment are separated by newlines or ;.
  bridge: listOf(/[;\n]/),
  bridgeRedis: pattern(backendUrlPattern('redis'), backendNamed('redis')?.example ?? '').optional(),
  bridgeNats: pattern(backendUrlPattern('nats'), backendNamed('nats')?.example ?? '').optional(),
  historySize: count,
  historyMaxAge: duration(1),
  nodeHeartbeat: duration(10),
  nodeLease: duration(100),
  latestMaxKeys: wholeNumber(0, undefined, 'keep none'),
  heartbeat: duration(10),
  retry: duration(),
  idleTimeout: duration(),
  maxLifetime: duration(),
  maxDataSize: size,
  maxBodySize: size,
  maxBatch: count,
  maxTopics: count,
  maxRewind: count,
  maxSnapshot: count,
  maxSelectorLength: wholeNumber(1, MAX_TOPIC_LENGTH),
  outboxMaxEvents: count,
  outboxMaxBytes: size,
  overflowPolicy: choice(['disconnect', 'drop-oldest']),
  compression: compressionCodings,
  jwtSecret: text.optional(),
  jwtPublicKey: text.optional(),
  jwksUrl: httpUrl.optional(),
  jwtAudience: text.optional(),
  jwtIssuer: text.optional(),
  jwtLeeway: duration(),
  anonymous: onOff,
  cookieName: pattern(COOKIE_NAME, COOKIE_HINT),
  authUrl: httpUrl.optional(),
  authForwardHeaders: headerNames,
  authTimeout: duration(1),
  webhookUrl: httpUrl.optional(),
  webhookSecret: text.optional(),
  webhookBatchDelay: duration(),
  corsOrigin: list,
  mercure: onOff,
  mercurePublisherJwtKey: text.optional(),
  mercurePublisherJwtAlg: pattern(JWT_ALG, JWT_ALG_HINT).optional(),
  mercurePublisherJwksUrl: httpUrl.optional(),
  mercureSubscriberJwtKey: text.optional(),
  mercureSubscriberJwtAlg: pattern(JWT_ALG, JWT_ALG_HINT).optional(),
  mercureSubscriberJwksUrl: httpUrl.optional(),
  mercureCookieName: pattern(COOKIE_NAME, COOKIE_HINT),
  mercurePublishOrigin: list,
  mercureSubscriptions: onOff,
  privateByDefault: onOff,
  reauthLead: duration(),
  insecure: onOff,
  ipConnectionRate: limit,
  ipConnectionBurst: limit,
  maxStreamsPerIp: limit,
  maxStreamsPerSubject: limit,
  maxStreamsPerTenant: limit,
  publishRate: limit,
  publishBurst: limit,
  limitsScope: choice(['cluster', 'node']),
  logLevel: choice(LOG_LEVELS),
  logFormat: choice(LOG_FORMATS),
  metricsPublic: onOff,
  trustProxy: list,
  headersTimeout: duration(1),
  testOnlyAllowWeakSecrets: onOff,
});

/** Every setting, checked together where one depends on another. */
export const serveConfigSchema = schema.superRefine((config, ctx) => {
  try {
    new TrustedProxies(config.trustProxy);
  } catch (error) {
    ctx.addIssue({ code: 'custom', path: ['trustProxy'], message: (error as Error).message });
  }
  try {
    checkedTimes({ heartbeatMs: config.nodeHeartbeat, leaseMs: config.nodeLease });
  } catch (error) {
    ctx.addIssue({ code: 'custom', path: ['nodeLease'], message: (error as Error).message });
  }
  if (config.webhookUrl !== undefined && config.webhookSecret === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['webhookSecret'],
      message:
        'is required with --webhook-url: every delivery is signed with it, so the app can tell it came from Herald',
    });
  }
  if (config.testOnlyAllowWeakSecrets) return;
  const secrets: [SettingKey, string | undefined][] = [
    ['jwtSecret', config.jwtSecret],
    ['webhookSecret', config.webhookSecret],
    ['mercurePublisherJwtKey', hmacOnly(config.mercurePublisherJwtKey, config.mercurePublisherJwtAlg)],
    ['mercureSubscriberJwtKey', hmacOnly(config.mercureSubscriberJwtKey, config.mercureSubscriberJwtAlg)],
  ];
  for (const [key, secret] of secrets) {
    const bytes = secret === undefined ? MIN_SECRET_BYTES : Buffer.byteLength(secret);
    if (bytes < MIN_SECRET_BYTES) {
      ctx.addIssue({
        code: 'custom',
        path: [key],
        message: `the secret is ${weakSecretProblem(bytes)} (tests only: HERALD_TEST_ONLY_ALLOW_WEAK_SECRETS=1)`,
      });
    }
  }
});

/**
 * Whether a Mercure key is an HMAC secret (as the reference hub reads it): not PEM, and its
 * algorithm, if named, HS*. Anything else is a public key, in PEM text or a file.
 */
export function isHmacKey(key: string, alg: string | undefined): boolean {
  return !key.includes('-----BEGIN') && (alg === undefined || alg.startsWith('HS'));
}

const hmacOnly = (key: string | undefined, alg: string | undefined) =>
  key !== undefined && isHmacKey(key, alg) ? key : undefined;

export type ServeConfig = z.output<typeof schema>;
export type SettingKey = keyof ServeConfig;

/** One setting's value parsed as the configuration parses it (for tests of the documented defaults). */
export function parseSetting(key: SettingKey, value: unknown): unknown {
  const parsed = schema.shape[key].safeParse(value);
  if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? `${shown(value)} is not valid`);
  return parsed.data;
}
