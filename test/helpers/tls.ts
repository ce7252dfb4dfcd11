import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCertificate {
  /** Paths of the PEM files. */
  readonly certFile: string;
  readonly keyFile: string;
  /** The certificate's PEM text: a client's `ca`, since it is self-signed. */
  readonly cert: string;
  readonly key: string;
  /** Removes the temporary directory. */
  remove(): void;
}

/**
 * A self-signed certificate for localhost and 127.0.0.1, made now by the openssl CLI in a
 * temporary directory: nothing secret is checked in, and nothing expires under the tests.
 */
export function makeCertificate(): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'herald-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        keyFile,
        '-out',
        certFile,
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    if ((error as { code?: string }).code === 'ENOENT') {
      throw new Error(
        'the TLS and HTTP/2 tests need the openssl CLI to make a self-signed certificate: apt-get install -y openssl',
      );
    }
    throw new Error(`openssl could not make a test certificate: ${(error as Error).message}`);
  }
  return {
    certFile,
    keyFile,
    cert: readFileSync(certFile, 'utf8'),
    key: readFileSync(keyFile, 'utf8'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
