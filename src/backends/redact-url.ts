/** A connection URL with its password masked, for messages and logs: a detail never carries a secret. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.host !== '') {
      if (parsed.password !== '') parsed.password = '***';
      // A user name alone is a credential of its own: NATS takes a token as `nats://TOKEN@host`.
      else if (parsed.username !== '') parsed.username = '***';
      return parsed.toString();
    }
  } catch {
    // Not a URL: masked below.
  }
  // No host to tell the parts apart (a bare `user:pass@host:port`): mask all before the `@`.
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^@/]*@/i, '$1***@');
}
