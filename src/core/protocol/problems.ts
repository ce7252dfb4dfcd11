/**
 * Every problem `code` the hub gives, with its HTTP status and when: the one list that
 * `HeraldError` takes its codes from (a code not here does not compile) and that the table in
 * docs/http-api.md must equal, row for row (test/docs/problem-codes.test.ts). A code may have
 * more than one row when its status depends on the case (`bad-http`: 400, or 431 for headers too
 * large). `when` is written in the docs' Markdown.
 *
 * Imports nothing: the client bundle may import its types.
 */

export interface Problem {
  readonly status: number;
  readonly code: string;
  readonly when: string;
}

export const PROBLEMS = [
  { status: 400, code: 'malformed-json', when: 'a JSON body that does not parse, or is not UTF-8' },
  {
    status: 400,
    code: 'json-too-deep',
    when: 'a JSON body nested more than 64 levels deep (found before parsing)',
  },
  {
    status: 400,
    code: 'json-too-many-items',
    when: 'a JSON body of more than 200 000 items (an array element counts 1, an object member 6)',
  },
  { status: 400, code: 'body-incomplete', when: 'the connection closed before the whole body arrived' },
  { status: 400, code: 'invalid-event', when: 'an event that is not a JSON object' },
  { status: 400, code: 'unknown-field', when: 'an event field Herald does not know (`"tpoic"`)' },
  { status: 400, code: 'empty-batch', when: 'a publish of an empty array' },
  {
    status: 400,
    code: 'topic-required',
    when: "a publish without a topic or with an empty one; a subscribe, poll or `GET /v1/history` without `topic`; `POST /v1/subscriptions` without `topics`, `types` or `tags`, or with empty `topics`; Mercure's publish or subscribe without `topic`",
  },
  { status: 400, code: 'topic-too-long', when: 'a topic over 1 024 characters' },
  {
    status: 400,
    code: 'too-many-topics',
    when: 'an event with more than 32 topics; a subscription (or a stream after a change) with more selectors than `--max-topics` (100)',
  },
  {
    status: 400,
    code: 'invalid-topic',
    when: 'a topic with a control character or half of a UTF-16 surrogate pair',
  },
  {
    status: 400,
    code: 'selector-too-long',
    when: 'a topic selector over `--max-selector-length` (1 024) characters',
  },
  {
    status: 400,
    code: 'invalid-template',
    when: 'a malformed URI template, one over 4 096 characters, or one with more than 16 variables',
  },
  {
    status: 400,
    code: 'too-many-templates',
    when: 'more than 32 URI templates in one stream (exact topics and `*` do not count)',
  },
  {
    status: 400,
    code: 'invalid-type',
    when: 'a `type` that is empty, over 128 characters, or holds a control character or half a surrogate pair; a `type=` filter or `POST /v1/subscriptions` `types` likewise, or starting with `herald.`, or more than 64; removing the last type of a stream, or removing types from a stream that takes every type; CR, LF or NUL in a Mercure `type`',
  },
  { status: 400, code: 'reserved-type', when: 'a `type` starting with `herald.`' },
  {
    status: 400,
    code: 'invalid-id',
    when: "an `id` that is empty, over 256 characters, holds a control character or half a surrogate pair, or looks like a log position (digits, digits-digits, or `<position>~<node>~<n>`, the ids of events held through a broker outage); on the NATS broker, an id over 1 024 bytes; a Mercure `id` with CR, LF or NUL or starting with `#`; a channel's `lastEventId` that is neither a string nor a number",
  },
  {
    status: 400,
    code: 'invalid-key',
    when: 'a `key` that is empty, over 256 characters, or holds a control character or half a surrogate pair',
  },
  {
    status: 400,
    code: 'invalid-tenant',
    when: 'a `tenant` that is not a string, over 256 characters, holds a control character, or is `*` (reserved for watching every tenant)',
  },
  {
    status: 400,
    code: 'invalid-tags',
    when: '`tags` that are not an object of strings, more than 32 of them, or a name not of 1–256 characters or a value over 256',
  },
  {
    status: 400,
    code: 'invalid-tag',
    when: 'a `tag.` filter without a name (`tag.<name>=<value>`), a name or value over 256 characters, or more than 64 values; `POST /v1/subscriptions` `tags` that are not an object of strings or string lists, an empty list, or removing the last value of a tag or from a tag the stream does not filter on',
  },
  {
    status: 400,
    code: 'invalid-wait',
    when: "a poll's `wait` that is not a whole number of seconds from 0 to 60",
  },
  {
    status: 400,
    code: 'invalid-limit',
    when: "a poll's `limit` (or `GET /v1/history`'s) that is not a whole number from 1 to 1 000; `GET /v1/latest`'s `limit` that is not one from 1 to `--max-snapshot` (10 000); `GET /v1/connections`' `limit` that is not one from 1 to 10 000",
  },
  {
    status: 400,
    code: 'invalid-before',
    when: "`GET /v1/history`'s `before` that is neither an event id of the tenant browsed nor a position in the log (with `tenant=*`, only a position), or is over 1 024 characters",
  },
  {
    status: 400,
    code: 'invalid-rewind',
    when: 'a `rewind` that is not a whole number from 0 to `--max-rewind` (1 000), or given twice',
  },
  {
    status: 400,
    code: 'invalid-since',
    when: 'a `since` that is not an ISO 8601 time with a zone, epoch milliseconds or a duration (`5m`), that reaches back further than `--history-max-age` (24 h), is over 64 characters, or is given twice',
  },
  {
    status: 400,
    code: 'invalid-snapshot',
    when: 'a `snapshot` other than `latest`, given twice, with `rewind` or `since`, or for every tenant (`tenant=*`); `GET /v1/latest` for every tenant',
  },
  {
    status: 400,
    code: 'latest-disabled',
    when: '`snapshot=latest` or `GET /v1/latest` on a hub that keeps no latest values (`--latest-max-keys 0`)',
  },
  { status: 400, code: 'invalid-private', when: '`private` that is not `true` or `false`' },
  { status: 400, code: 'invalid-priority', when: '`priority` that is not `normal` or `high`' },
  {
    status: 400,
    code: 'invalid-retry',
    when: '`retry` that is not a whole number of milliseconds, 0 or more (Mercure: a `retry` that is not a whole number)',
  },
  {
    status: 400,
    code: 'invalid-redact',
    when: '`redact` that is not 1 to 32 JSON Pointers each mapped to a permission, or `redact` on data that is not an object or array',
  },
  { status: 400, code: 'invalid-data', when: '`data` that cannot be serialized as JSON' },
  {
    status: 400,
    code: 'connection-required',
    when: '`POST /v1/subscriptions` or `POST /v1/channels` without `connectionId`',
  },
  {
    status: 400,
    code: 'secret-required',
    when: "`POST /v1/subscriptions` or `POST /v1/channels` without the stream's `secret`",
  },
  {
    status: 400,
    code: 'invalid-action',
    when: '`POST /v1/subscriptions` with an `action` other than `subscribe`, `unsubscribe` or `set`; `POST /v1/channels` with one other than `open` or `close`',
  },
  {
    status: 400,
    code: 'invalid-channel',
    when: 'a `channel` that is not 1–64 characters of `A–Z`, `a–z`, `0–9`, `_` and `-`; `mux` other than `1`, or a mux stream given `topic`, `type`, `tag.`, `rewind`, `since` or `snapshot` (its channels take them)',
  },
  {
    status: 400,
    code: 'too-many-channels',
    when: '`POST /v1/channels` opening a 33rd channel on one mux stream',
  },
  {
    status: 400,
    code: 'invalid-presence',
    when: "a stream's `presence` that is not `1` or `0`",
  },
  {
    status: 400,
    code: 'invalid-connection-filter',
    when: '`GET /v1/connections` with an unknown parameter, or a `tenant`, `subject` or `topic` that is not one; a disconnect whose `tenant` is not one',
  },
  {
    status: 400,
    code: 'invalid-disconnect',
    when: '`POST /v1/connections/disconnect` with a body that is not an object, an unknown field, none of `id`, `subject`, `tenant`, or a `reason` or `reconnect` of the wrong type',
  },
  { status: 400, code: 'malformed-form', when: 'a Mercure publish whose form body is not UTF-8' },
  {
    status: 400,
    code: 'malformed-path',
    when: 'a Mercure subscriptions URL whose topic or subscriber is not percent-encoded',
  },
  { status: 400, code: 'bad-http', when: '(`herald serve`) a request that is not valid HTTP/1.1' },
  {
    status: 400,
    code: 'bad-request',
    when: "(`--workers`) an unknown operation on the pipe between a worker and the primary's log: a bug, never a client's request",
  },
  {
    status: 401,
    code: 'token-required',
    when: "no token where one is needed (publishing, `/v1/stats`, `/metrics`, and subscribing without `--anonymous`); Mercure's routes likewise",
  },
  {
    status: 401,
    code: 'token-malformed',
    when: 'a token that is not a well-formed JWT, an `Authorization` header that is not `Bearer <jwt>`, or a claim of the wrong type (`exp`, `nbf`, `iat`, `iss`, `aud`)',
  },
  { status: 401, code: 'token-alg-none', when: 'an unsigned token (`alg: none`)' },
  {
    status: 401,
    code: 'token-alg-not-allowed',
    when: 'a token signed with an algorithm the configured keys do not verify (an HS token where only RS keys are configured, for one)',
  },
  {
    status: 401,
    code: 'token-signature-invalid',
    when: 'a signature that does not verify with the configured keys',
  },
  {
    status: 401,
    code: 'token-kid-unknown',
    when: 'a `kid` that the JWKS does not have (refetched at most once every 30 s)',
  },
  { status: 401, code: 'token-expired', when: 'a token past its `exp` (with `--jwt-leeway`)' },
  { status: 401, code: 'token-not-yet-valid', when: 'a token before its `nbf`' },
  { status: 401, code: 'token-issuer-invalid', when: 'a token from another issuer than `--jwt-issuer`' },
  { status: 401, code: 'token-audience-invalid', when: 'a token for another audience than `--jwt-audience`' },
  { status: 401, code: 'token-claims-invalid', when: 'a `herald` (or `mercure`) claim of the wrong shape' },
  {
    status: 401,
    code: 'auth-denied',
    when: "`--auth-url`: the app's auth endpoint answered 401 to a stream or publish without a Herald token",
  },
  {
    status: 403,
    code: 'auth-denied',
    when: '`--auth-url`: the app\'s auth endpoint answered 403, or `{"allow": false}` (with its `reason`)',
  },
  { status: 403, code: 'publish-forbidden', when: 'a topic that no publish grant of the token matches' },
  {
    status: 403,
    code: 'tenant-forbidden',
    when: "`?tenant=` (or a channel's `tenant`) of another tenant, or a publish into another tenant, without admin credentials; listing or ending connections of another tenant with an admin token of a named tenant",
  },
  {
    status: 403,
    code: 'admin-required',
    when: '`/metrics` without admin credentials (and without `--metrics-public`); `GET /v1/history`, `GET /v1/nodes`, `GET /v1/connections` or `POST /v1/connections/disconnect` without admin credentials',
  },
  {
    status: 403,
    code: 'key-role-forbidden',
    when: "a token signed with a key of the other role: a Mercure subscriber key's token publishing, or a publisher key's token subscribing",
  },
  {
    status: 403,
    code: 'loopback-only',
    when: 'open development mode: publishing over HTTP, stream changes, stats, history, metrics or the dashboard from another machine',
  },
  {
    status: 403,
    code: 'not-your-stream',
    when: '`POST /v1/subscriptions` from another credential than the one that opened the stream; `POST /v1/channels` from another than the one that opened the mux stream',
  },
  {
    status: 403,
    code: 'origin-not-allowed',
    when: 'a state-changing request authenticated by a cookie without an `Origin` from `--cors-origin` (`*` does not count)',
  },
  { status: 403, code: 'cors-origin-denied', when: 'a CORS preflight from an origin not in `--cors-origin`' },
  {
    status: 403,
    code: 'reserved-topic',
    when: "a topic in Mercure's reserved `/.well-known/mercure` namespace, on either publish route",
  },
  {
    status: 403,
    code: 'subscriptions-forbidden',
    when: "Mercure's subscriptions API with a token whose `mercure.subscribe` does not match the URL",
  },
  {
    status: 403,
    code: 'presence-forbidden',
    when: '`GET /v1/presence` for a topic that no subscribe grant of the token matches, without admin credentials',
  },
  { status: 404, code: 'not-found', when: 'an unknown route' },
  {
    status: 404,
    code: 'connection-not-found',
    when: '`POST /v1/subscriptions` for a stream that is not open on this node, or with a wrong secret; `POST /v1/channels` for a mux stream likewise; `POST /v1/connections/disconnect` with an `id` that no node holds (every live node is asked)',
  },
  {
    status: 404,
    code: 'subscription-not-found',
    when: "Mercure's subscriptions API for a subscription that is not active",
  },
  { status: 405, code: 'method-not-allowed', when: 'a method the route does not serve, with `Allow`' },
  {
    status: 408,
    code: 'request-timeout',
    when: '(`herald serve`) request headers that did not all arrive within `--headers-timeout`',
  },
  { status: 409, code: 'duplicate-id', when: "a publisher-chosen id already in its tenant's history" },
  {
    status: 413,
    code: 'data-too-large',
    when: "data over `--max-data-size` (1 MiB); on NATS, an event over the server's `max_payload`",
  },
  { status: 413, code: 'body-too-large', when: 'a request body over `--max-body-size` (4 MiB)' },
  {
    status: 413,
    code: 'batch-too-large',
    when: 'a batch over `--max-batch` (1 000), or over the publish burst of one credential (`--publish-burst`)',
  },
  {
    status: 415,
    code: 'unsupported-media-type',
    when: 'a publish that is not `application/json` (Mercure: not `application/x-www-form-urlencoded`)',
  },
  {
    status: 429,
    code: 'too-many-connections',
    when: 'an IP over `--ip-connection-rate` / `--ip-connection-burst`, with `Retry-After`',
  },
  {
    status: 429,
    code: 'too-many-streams',
    when: 'over `--max-streams-per-ip`, `--max-streams-per-subject` or `--max-streams-per-tenant`, with `Retry-After`',
  },
  {
    status: 429,
    code: 'publish-rate-exceeded',
    when: 'a credential over `--publish-rate` / `--publish-burst`, with `Retry-After`',
  },
  { status: 431, code: 'bad-http', when: '(`herald serve`) a request line and headers over 128 KiB' },
  { status: 500, code: 'internal', when: "an unexpected failure; the error is in the hub's log" },
  {
    status: 501,
    code: 'history-unsupported',
    when: "`GET /v1/history` on a log that cannot be read from its newest end (an embedder's own `Log` without `readBack`)",
  },
  {
    status: 503,
    code: 'broker-unavailable',
    when: 'the broker cannot be reached or is closed; retry shortly',
  },
  {
    status: 503,
    code: 'outage-buffer-full',
    when: '`--on-broker-down local`: the broker is down and the node already holds `--outage-buffer` (10 000) events for it, with `Retry-After`',
  },
  { status: 503, code: 'shutting-down', when: 'the hub is shutting down' },
  {
    status: 503,
    code: 'jwks-unavailable',
    when: 'the JWKS cannot be fetched to verify a token, with `Retry-After`',
  },
  {
    status: 503,
    code: 'auth-unavailable',
    when: "`--auth-url`: the app's auth endpoint did not answer within `--auth-timeout` (2 s), could not be reached, or answered a status other than 2xx, 401 and 403, with `Retry-After`",
  },
  {
    status: 503,
    code: 'auth-answer-invalid',
    when: "`--auth-url`: the app's auth endpoint answered 2xx with what [docs/hooks.md](hooks.md) does not describe (not JSON, a malformed grant or tenant, `admin` without `allowAdmin`), with `Retry-After`",
  },
  {
    status: 503,
    code: 'dashboard-not-built',
    when: '`/dashboard` from a checkout where `npm run build` has not bundled the page',
  },
] as const satisfies readonly Problem[];

/** A stable, machine-readable reason, e.g. `topic-required`. */
export type ProblemCode = (typeof PROBLEMS)[number]['code'];

/** The statuses `code` is given with: `ProblemStatus<'data-too-large'>` is 413. */
export type ProblemStatus<C extends ProblemCode = ProblemCode> = Extract<
  (typeof PROBLEMS)[number],
  { readonly code: C }
>['status'];
