import { maskUrl, maskUrlsIn } from './masking.ts';

/**
 * What the CLI says when something outside it fails: a port it cannot listen on (one message for
 * `herald serve` alone and with `--workers`), and a hub that `publish`, `listen` or `health`
 * cannot reach or that refuses them. Each names the address and what to try.
 */

/** Why `host:port` cannot be listened on, in words, with what to do; `error` is what `listen` gave. */
export function listenError(error: unknown, host: string, port: number): Error {
  const code = (error as { code?: string } | undefined)?.code;
  const where = `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`;
  const message = (() => {
    switch (code) {
      case 'EADDRINUSE':
        return (
          `port ${port} is already in use (EADDRINUSE). Stop the program that holds it ` +
          `(\`lsof -i :${port}\` or \`ss -ltnp\` names it), or choose another port with --port ` +
          '(HERALD_PORT; --port 0 takes any free one)'
        );
      case 'EACCES':
        return (
          `permission denied (EACCES): ports below 1024 need privileges. Use --port ${port < 1024 ? 8080 : port} ` +
          'behind a proxy, or give node the CAP_NET_BIND_SERVICE capability'
        );
      case 'EADDRNOTAVAIL':
        return `${host} is not an address of this machine (EADDRNOTAVAIL). Use --host 127.0.0.1, 0.0.0.0 or one of its addresses`;
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return `the host name ${host} does not resolve (${code}). Use --host with an address of this machine`;
      default:
        return maskUrlsIn(error instanceof Error ? error.message : String(error));
    }
  })();
  const failure = new Error(`cannot listen on ${where}: ${message}`);
  if (code !== undefined) (failure as Error & { code?: string }).code = code;
  return failure;
}

/** What `fetch` hides in `cause`: `ECONNREFUSED`, a certificate's code… */
function causeOf(error: unknown): { code?: string; message?: string } {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as { code?: string }).code;
    if (typeof code === 'string' && code !== 'UND_ERR') return { code, message: current.message };
    current = current.cause;
  }
  return error instanceof Error && error.cause instanceof Error ? { message: error.cause.message } : {};
}

const CERTIFICATE_CODES =
  /^(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|CERT_HAS_EXPIRED|ERR_TLS_CERT_ALTNAME_INVALID)$/;

/**
 * A request to the hub at `url` that got no answer (`fetch failed`, a timeout), in words: the
 * URL, why, and what to try. `what` names the request, e.g. `publish to`.
 */
export function unreachable(url: string | URL, error: unknown): Error {
  const at = maskUrl(String(url));
  if (
    (error as Error | undefined)?.name === 'TimeoutError' ||
    (error as Error | undefined)?.name === 'AbortError'
  ) {
    return new Error(
      `the hub at ${at} did not answer in time. Is it overloaded, or is --url (HERALD_URL) the hub's address?`,
    );
  }
  const { code, message } = causeOf(error);
  let reason: string;
  if (/includes credentials/.test(message ?? (error as Error | undefined)?.message ?? '')) {
    return new Error(
      `cannot send to ${at}: the URL holds a user name or password, which fetch refuses to send. ` +
        'Give the hub URL without them, and a token with --token or HERALD_TOKEN',
    );
  }
  let hint = 'Is herald serve running there? Start it, or point --url (or HERALD_URL) at the hub';
  switch (code) {
    case 'ECONNREFUSED':
      reason = 'connection refused: nothing listens there';
      break;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      reason = `the host name ${new URL(String(url)).hostname} does not resolve`;
      hint = 'Check the host in --url (or HERALD_URL)';
      break;
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      reason = 'the connection was closed before an answer';
      hint = 'Is it a Herald hub, and http:// or https:// as it serves?';
      break;
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      reason = 'the connection timed out';
      hint = 'Is the address reachable from here (firewall, network)?';
      break;
    default:
      if (message === 'bad port') {
        reason = `fetch refuses port ${new URL(String(url)).port}: it belongs to another protocol`;
        hint = "Point --url (or HERALD_URL) at the hub's port";
      } else if (code !== undefined && CERTIFICATE_CODES.test(code)) {
        reason = `its TLS certificate is not trusted (${code})`;
        hint = 'For a self-signed certificate, point NODE_EXTRA_CA_CERTS at it';
      } else {
        reason = code === undefined ? (message ?? String(error)) : `${code}${message ? `: ${message}` : ''}`;
      }
  }
  return new Error(`cannot reach the hub at ${at} (${maskUrlsIn(reason)}). ${hint}`);
}

/**
 * A hub's refusal (`status`, the problem's `detail`) of a request to `url`, with what to try when
 * the status says more than the detail does.
 */
export function refused(url: string | URL, status: number, detail: string, isProblem: boolean): Error {
  const at = maskUrl(String(url));
  let hint = '';
  if (status === 401) hint = '. Pass a token with --token or HERALD_TOKEN (`herald token` mints one)';
  else if (status === 403)
    hint = "; the token's grants do not allow it (`herald token --help` shows the grants)";
  else if (!isProblem && (status === 404 || status === 405))
    hint = `. Is --url (HERALD_URL) a Herald hub's address? ${at} does not look like one`;
  return new Error(`${at} answered ${status}: ${maskUrlsIn(detail)}${hint}`);
}

/**
 * Why `herald listen`'s stream from `url` broke, and that it reconnects: a hub it cannot reach is
 * named with what to try, as `publish` names it.
 */
export function interrupted(url: string | URL, error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (message === 'fetch failed' || causeOf(error).code !== undefined) {
    const reason = unreachable(url, error).message.replace(/\. ([^.]*)$/, '');
    const hint = /\. ([^.]*)$/.exec(unreachable(url, error).message)?.[1];
    return `${reason}; reconnecting${hint === undefined ? '' : ` (${hint.charAt(0).toLowerCase()}${hint.slice(1)})`}`;
  }
  return `the stream from ${maskUrl(String(url))} was interrupted (${maskUrlsIn(message)}); reconnecting`;
}
