import { maskSecrets } from '../observability/logger.ts';

/**
 * Credentials in what the CLI shows: a setting's value in a message, `--help` or `config check`,
 * and a URL quoted in an error. Whatever is printed passes through here, so that a password in a
 * broker URL or a token in a query string never reaches a terminal or a log.
 */

/**
 * A value as messages, `--help` and `config check` show it: quoted, with the credentials of a URL
 * (`redis://:password@…`, `nats://token@…`) and token-like query parameters masked.
 */
export function shown(value: unknown): string {
  return JSON.stringify(maskUrl(String(value)));
}

/** A URL with its user info and token-like parameters masked; other text as it is. */
export function maskUrl(text: string): string {
  let masked = text;
  try {
    const url = new URL(text);
    if (url.host !== '' && (url.username !== '' || url.password !== '')) {
      // A user name alone may be a token (nats://token@host); with a password it is only a name.
      if (url.password !== '') url.password = '***';
      else url.username = '***';
      masked = url.toString();
    }
  } catch {
    // Not a URL (`redis//:pw@host`, a typo): whatever sits between // and @ may be a password.
    masked = text.replace(/^([^\s@]*\/\/)[^@/\s]*@/, '$1***@');
  }
  return maskSecrets(masked);
}

/** `scheme://user:password@` anywhere in a text (an error message quoting a URL): the user info masked. */
const USER_INFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@'"]+@/gi;

/** A message with the credentials of any URL it quotes masked, and token-like parameters too. */
export function maskUrlsIn(text: string): string {
  return text.replace(USER_INFO, '$1***@').replace(TOKEN_PARAMETER, '$1***');
}

/** `?access_token=…` with a value (not the `<jwt>` of a message saying how to send one). */
const TOKEN_PARAMETER = /([?&](?:access_token|authorization|token|jwt)=)(?!<)[^&#\s"'<>)]+/gi;
