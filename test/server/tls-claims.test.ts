import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type PeerCertificate } from 'node:tls';
import { killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { killAllCli, runCli } from './run-cli.ts';

/**
 * README, "HTTPS and HTTP/2": "The certificate file may hold the chain after the certificate; the
 * key must not be encrypted", and "`herald publish` and `listen` take an `https://` `--url`; for a
 * self-signed certificate, point `NODE_EXTRA_CA_CERTS` at it". The certificates are a real chain
 * made by the openssl CLI (root → intermediate → leaf): the clients trust the root alone, so they
 * accept the hub only if it sends the intermediate from its certificate file.
 */

interface Chain {
  readonly dir: string;
  readonly root: string;
  /** The leaf, then the intermediate. */
  readonly fullchain: string;
  /** The leaf alone. */
  readonly leaf: string;
  readonly key: string;
  /** The same key, encrypted with PASSPHRASE: PKCS#8 (`BEGIN ENCRYPTED PRIVATE KEY`). */
  readonly encryptedKey: string;
  /** And in the traditional format (`Proc-Type: 4,ENCRYPTED`). */
  readonly traditionalEncryptedKey: string;
}

const PASSPHRASE = 'correct horse battery staple';

function openssl(args: readonly string[], dir: string): void {
  try {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') {
      throw new Error('the TLS tests need the openssl CLI to make certificates: apt-get install -y openssl');
    }
    throw new Error(`openssl ${args[0]} failed: ${(error as { stderr?: Buffer }).stderr ?? error}`);
  }
}

/** A root CA, an intermediate CA it signed, and a leaf for localhost and 127.0.0.1 that the intermediate signed. */
function makeChain(): Chain {
  const dir = mkdtempSync(join(tmpdir(), 'herald-tls-chain-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  writeFileSync(
    join(dir, 'ca.ext'),
    'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' +
      'subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n',
  );
  writeFileSync(
    join(dir, 'leaf.ext'),
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' +
      'subjectAltName=DNS:localhost,IP:127.0.0.1\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n',
  );
  const days = ['-days', '2'];
  openssl(
    [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      'root.key',
      '-out',
      'root.pem',
      ...days,
      '-subj',
      '/CN=Herald Test Root',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  openssl(
    ['req', '-new', ...ec, '-keyout', 'int.key', '-out', 'int.csr', '-subj', '/CN=Herald Test Intermediate'],
    dir,
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'int.csr',
      '-CA',
      'root.pem',
      '-CAkey',
      'root.key',
      '-CAcreateserial',
      '-out',
      'int.pem',
      ...days,
      '-extfile',
      'ca.ext',
    ],
    dir,
  );
  openssl(['req', '-new', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost'], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'leaf.csr',
      '-CA',
      'int.pem',
      '-CAkey',
      'int.key',
      '-CAcreateserial',
      '-out',
      'leaf.pem',
      ...days,
      '-extfile',
      'leaf.ext',
    ],
    dir,
  );
  openssl(
    [
      'pkey',
      '-in',
      'leaf.key',
      '-aes-256-cbc',
      '-passout',
      `pass:${PASSPHRASE}`,
      '-out',
      'leaf-encrypted.key',
    ],
    dir,
  );
  openssl(
    [
      'ec',
      '-in',
      'leaf.key',
      '-aes-256-cbc',
      '-passout',
      `pass:${PASSPHRASE}`,
      '-out',
      'leaf-traditional.key',
    ],
    dir,
  );
  const fullchain = join(dir, 'fullchain.pem');
  writeFileSync(
    fullchain,
    readFileSync(join(dir, 'leaf.pem'), 'utf8') + readFileSync(join(dir, 'int.pem'), 'utf8'),
  );
  return {
    dir,
    root: join(dir, 'root.pem'),
    fullchain,
    leaf: join(dir, 'leaf.pem'),
    key: join(dir, 'leaf.key'),
    encryptedKey: join(dir, 'leaf-encrypted.key'),
    traditionalEncryptedKey: join(dir, 'leaf-traditional.key'),
  };
}

/** A TLS handshake trusting `ca` alone: what the client verified, and the protocol ALPN chose. */
function handshake(
  url: string,
  ca: string,
): Promise<{ authorized: boolean; error: string | undefined; alpn: string | false | null; chain: string[] }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: hostname,
      port: Number(port),
      ca: readFileSync(ca, 'utf8'),
      rejectUnauthorized: false,
      ALPNProtocols: ['h2', 'http/1.1'],
    });
    socket.once('secureConnect', () => {
      const chain: string[] = [];
      let certificate: PeerCertificate | undefined = socket.getPeerCertificate(true);
      while (certificate?.subject !== undefined && chain.length < 5) {
        chain.push(certificate.subject.CN as string);
        const issuer: PeerCertificate | undefined = (
          certificate as PeerCertificate & { issuerCertificate?: PeerCertificate }
        ).issuerCertificate;
        if (issuer === certificate) break;
        certificate = issuer;
      }
      resolve({
        authorized: socket.authorized,
        error: socket.authorized ? undefined : String(socket.authorizationError),
        alpn: socket.alpnProtocol,
        chain,
      });
      socket.end();
    });
    socket.once('error', reject);
  });
}

describe('herald serve over HTTPS with a certificate chain', () => {
  let chain: Chain;
  before(() => {
    chain = makeChain();
  });
  after(async () => {
    await killAllCli();
    await killAllHubs();
    if (chain !== undefined) rmSync(chain.dir, { recursive: true, force: true });
  });

  test('sends the intermediate from the certificate file: a client that trusts only the root accepts it, over HTTP/2', async () => {
    const hub = await spawnHub(['--tls-cert', chain.fullchain, '--tls-key', chain.key]);
    assert.match(hub.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const result = await handshake(hub.url, chain.root);
    assert.equal(result.error, undefined);
    assert.equal(result.authorized, true);
    assert.deepEqual(result.chain, ['localhost', 'Herald Test Intermediate', 'Herald Test Root']);
    assert.equal(result.alpn, 'h2');
    await hub.stop();
  });

  test('herald publish and listen take an https:// --url, trusting the root through NODE_EXTRA_CA_CERTS', async () => {
    const hub = await spawnHub(['--tls-cert', chain.fullchain, '--tls-key', chain.key]);
    const env = { NODE_EXTRA_CA_CERTS: chain.root };
    const first = await runCli(
      ['publish', '--url', hub.url, '--topic', 'secure/t', '--data', '{"n":1}'],
      env,
    );
    assert.equal(first.code, 0, first.stderr);
    const firstId = first.stdout.trim();
    assert.ok(firstId.length > 0, 'publish prints the id');
    const second = await runCli(
      ['publish', '--url', hub.url, '--topic', 'secure/t', '--data', '{"n":2}'],
      env,
    );
    assert.equal(second.code, 0, second.stderr);

    const listened = await runCli(
      ['listen', '--url', hub.url, '--topic', 'secure/t', '--last-event-id', firstId, '--count', '1'],
      env,
    );
    assert.equal(listened.code, 0, listened.stderr);
    assert.deepEqual(JSON.parse(listened.stdout), {
      id: second.stdout.trim(),
      type: 'message',
      data: { n: 2 },
    });

    // Without the root trusted, the same publish is refused by the client, saying what to do.
    const untrusted = await runCli(['publish', '--url', hub.url, '--topic', 'secure/t', '--data', '3']);
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.stderr, /certificate is not trusted.*NODE_EXTRA_CA_CERTS/s);
    await hub.stop();
  });

  test('the leaf alone in the certificate file is what a root-trusting client cannot verify (the chain matters)', async () => {
    const hub = await spawnHub(['--tls-cert', chain.leaf, '--tls-key', chain.key]);
    const result = await handshake(hub.url, chain.root);
    assert.equal(result.authorized, false);
    assert.match(
      result.error ?? '',
      /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|unable to (get local issuer|verify the first) certificate/,
    );
    await hub.stop();
  });

  test('"the key must not be encrypted": an encrypted key stops the start, naming --tls-key', async () => {
    const result = await serveWith(chain.fullchain, chain.encryptedKey);
    assert.notEqual(result.code, 0, 'it does not start');
    const said = result.stdout + result.stderr;
    assert.match(said, /--tls-key \(HERALD_TLS_KEY\)/);
    assert.doesNotMatch(said, /listening on/);
    assert.doesNotMatch(said, /ENCRYPTED|MII/, 'nothing of the key');
  });

  test('an encrypted key is named as such, with the command that decrypts it (PKCS#8 and traditional PEM)', async () => {
    for (const key of [chain.encryptedKey, chain.traditionalEncryptedKey]) {
      const result = await serveWith(chain.fullchain, key);
      assert.notEqual(result.code, 0, 'it does not start');
      assert.match(
        result.stdout + result.stderr,
        /--tls-key \(HERALD_TLS_KEY\): the private key is encrypted; give it unencrypted \(openssl pkey /,
        key,
      );
    }
  });
});

/** `herald serve` with this certificate and key, run to its exit. */
function serveWith(cert: string, key: string) {
  return runCli(['serve', '--port', '0', '--tls-cert', cert, '--tls-key', key], {}, { limitMs: 60_000 });
}
