import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { NodeHandler } from '../http/node.ts';

/**
 * What `herald serve` listens with: plain HTTP/1.1, or TLS with HTTP/2 and HTTP/1.1 on one port.
 * With `allowHTTP1`, node:http2 closes idle HTTP/1.1 connections as node:http does; its types do
 * not say so yet.
 */
export type HeraldServer = Server | (Http2SecureServer & { closeIdleConnections(): void });

export interface TlsSettings {
  readonly tlsCert?: string | undefined;
  readonly tlsKey?: string | undefined;
}

/** PEM text of the certificate (with any chain after it) and of its private key. */
export interface TlsPem {
  readonly cert: string;
  readonly key: string;
}

const CERT = '--tls-cert (HERALD_TLS_CERT)';
const KEY = '--tls-key (HERALD_TLS_KEY)';

/**
 * The certificate and key, read and checked now: a typo in a path or a key from another
 * certificate stops the start with the setting named, instead of every handshake failing later.
 * `undefined` when neither is set (plain HTTP).
 */
export function loadTls(settings: TlsSettings): TlsPem | undefined {
  const { tlsCert, tlsKey } = settings;
  if (tlsCert === undefined && tlsKey === undefined) return undefined;
  if (tlsCert === undefined) throw new Error(`${CERT} is required with ${KEY}: HTTPS needs both`);
  if (tlsKey === undefined) throw new Error(`${KEY} is required with ${CERT}: HTTPS needs both`);
  const cert = readPem(tlsCert, CERT);
  const key = readPem(tlsKey, KEY);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (error) {
    throw new Error(`${CERT}: not a PEM certificate (-----BEGIN CERTIFICATE-----): ${reason(error)}`);
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new Error(
      isEncrypted(key, error)
        ? `${KEY}: the private key is encrypted; give it unencrypted (openssl pkey -in key.pem -out key-plain.pem)`
        : `${KEY}: not a PEM private key (-----BEGIN PRIVATE KEY-----): ${reason(error)}`,
    );
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new Error(`${KEY} is not the private key of the certificate in ${CERT} (${certificate.subject})`);
  }
  return { cert, key };
}

/**
 * A server for `handler`: node:http without TLS; with it, HTTP/2 where the client offers it (ALPN)
 * and HTTP/1.1 for the others, on the same port. Browsers open at most 6 HTTP/1.1 connections per
 * origin, so a page with more streams than that needs HTTP/2, where they share one connection.
 */
export function createHeraldServer(
  handler: NodeHandler,
  tls: TlsPem | undefined,
  maxHeaderBytes: number,
): HeraldServer {
  if (tls === undefined) return createServer({ maxHeaderSize: maxHeaderBytes }, handler);
  const options = {
    cert: tls.cert,
    key: tls.key,
    allowHTTP1: true,
    // The same room for a long subscription URL on both protocols. node:http2 hands maxHeaderSize
    // to its HTTP/1.1 fallback, though its types leave it out.
    maxHeaderSize: maxHeaderBytes,
    settings: { maxHeaderListSize: maxHeaderBytes },
  };
  const server = createSecureServer(options, handler);
  return server as typeof server & { closeIdleConnections(): void };
}

/** The PEM text itself (handy in an environment variable), or the file holding it. */
function readPem(value: string, setting: string): string {
  if (value.includes('-----BEGIN')) return value;
  try {
    return readFileSync(value, 'utf8');
  } catch (error) {
    throw new Error(`${setting}: cannot read ${value}: ${reason(error)}`);
  }
}

const reason = (error: unknown) => (error instanceof Error ? error.message : String(error));

/**
 * Whether a key failed to load because it is encrypted. The PEM says so itself (PKCS#8's
 * `ENCRYPTED PRIVATE KEY`, or the traditional `Proc-Type: 4,ENCRYPTED`); OpenSSL 3 reports it as
 * `ERR_OSSL_CRYPTO_INTERRUPTED_OR_CANCELLED` rather than `ERR_MISSING_PASSPHRASE`, so the
 * error code alone does not tell.
 */
function isEncrypted(key: string, error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === 'ERR_MISSING_PASSPHRASE' || /ENCRYPTED/.test(key);
}
