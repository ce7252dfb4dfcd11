/**
 * Reconnection delays: exponential backoff with full jitter (AWS Architecture Blog, "Exponential
 * Backoff And Jitter"): the delay is uniform in [0, min(cap, base · 2^attempt)), so clients cut
 * off together do not come back together.
 */

/**
 * The delay before reconnection attempt `attempt` (0 for the first after a healthy stream).
 * `baseMs` is the client's initial delay, or the server's `retry:` hint when it sent one; the cap
 * never lowers the server's hint below itself.
 */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random = Math.random): number {
  return random() * Math.min(Math.max(capMs, baseMs), baseMs * 2 ** attempt);
}

/**
 * A `Retry-After` header (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) in ms, or 0 when absent or
 * unreadable. It is a minimum: the client never comes back sooner.
 */
export function retryAfterMs(value: string | null | undefined, now = Date.now()): number {
  if (!value) return 0;
  const ms = /^\s*\d+\s*$/.test(value) ? +value * 1000 : Date.parse(value) - now;
  return Math.max(ms || 0, 0); // NaN (an unreadable date) is 0
}
