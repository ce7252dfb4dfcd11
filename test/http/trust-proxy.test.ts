import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type HttpBindings, serve } from '@hono/node-server';
import { Hono } from 'hono';
import { createHerald, type Herald } from '../../src/herald.ts';
import { webHandler } from '../../src/http/web.ts';
import { type HubProcess, spawnHub } from '../helpers/nodes.ts';
import { startHub, type TestHub } from '../helpers/server.ts';
import { openStream, type SseStream } from '../helpers/sse-client.ts';

/**
 * `--trust-proxy` (issue 12, item 8): behind a load balancer every client shares its address, so
 * per-IP limits cap the whole service unless Herald reads the client's address from the
 * forwarded header, and only from a proxy it trusts, and never what a client wrote in it.
 *
 * What the hub takes for the client's address is observed through a per-IP limit with no clock
 * in it: one open stream per IP (`--max-streams-per-ip 1`), so a second stream from the same
 * client is 429 and a stream from another client is 200.
 */

const open: SseStream[] = [];

/** Opens a stream at `base` with these headers and returns its status; it stays open. */
async function streamStatus(base: string, headers: Record<string, string> = {}): Promise<number> {
  const stream = await openStream(`${base}/v1/events?topic=a`, { headers });
  open.push(stream);
  if (stream.status !== 200) stream.close();
  return stream.status;
}

const xff = (value: string) => ({ 'x-forwarded-for': value });
const forwarded = (value: string) => ({ forwarded: value });

after(() => {
  for (const stream of open) stream.close();
});

describe('herald serve --trust-proxy 127.0.0.1: per-IP limits count the clients behind the proxy', () => {
  let hub: HubProcess;
  before(async () => {
    hub = await spawnHub(['--trust-proxy', '127.0.0.1', '--max-streams-per-ip', '1']);
  });
  after(() => hub?.stop());

  test('each forwarded client has its own limit, and the proxy is not capped by them', async () => {
    assert.equal(await streamStatus(hub.url, xff('203.0.113.1')), 200);
    assert.equal(await streamStatus(hub.url, xff('203.0.113.1')), 429, 'the same client, again');
    assert.equal(await streamStatus(hub.url, xff('203.0.113.2')), 200, 'another client behind the proxy');
    assert.equal(await streamStatus(hub.url, forwarded('for=203.0.113.3')), 200, 'as RFC 7239 writes it');
    assert.equal(await streamStatus(hub.url, forwarded('for=203.0.113.3')), 429);
  });

  test("what a client wrote left of the proxy's own entry is never believed", async () => {
    assert.equal(await streamStatus(hub.url, xff('203.0.113.10')), 200);
    // Fresh addresses on the left: were any believed, each would be a client with a free slot.
    for (const spoofed of ['198.51.100.1', '10.0.0.1', '127.0.0.1', 'unknown', '::1']) {
      assert.equal(await streamStatus(hub.url, xff(`${spoofed}, 203.0.113.10`)), 429, spoofed);
      assert.equal(
        await streamStatus(hub.url, forwarded(`for="${spoofed}", for=203.0.113.10`)),
        429,
        spoofed,
      );
    }
    // A client's unbalanced quote must not swallow the element the proxy appended after it.
    assert.equal(await streamStatus(hub.url, forwarded('for="198.51.100.9, for=203.0.113.10')), 429);
  });

  test("a request with both headers counts as the proxy: one of them is the client's, and nothing says which", async () => {
    const both = (a: string, b: string) => ({ ...forwarded(`for=${a}`), ...xff(b) });
    assert.equal(await streamStatus(hub.url, both('203.0.113.20', '203.0.113.21')), 200);
    assert.equal(
      await streamStatus(hub.url, both('203.0.113.22', '203.0.113.23')),
      429,
      'as 127.0.0.1 again',
    );
    assert.equal(await streamStatus(hub.url), 429, 'the proxy itself, without a header');
    // Whose addresses they named were not charged.
    for (const client of ['203.0.113.20', '203.0.113.21', '203.0.113.22', '203.0.113.23']) {
      assert.equal(await streamStatus(hub.url, xff(client)), 200, client);
    }
  });

  test('ports, brackets, case and IPv4-mapped spellings name one client once', async () => {
    assert.equal(await streamStatus(hub.url, forwarded('For="[2001:DB8:0::1]:4711";proto=https')), 200);
    assert.equal(await streamStatus(hub.url, xff('2001:db8::1')), 429);
    assert.equal(await streamStatus(hub.url, xff('[2001:db8::1]:80')), 429);
    assert.equal(await streamStatus(hub.url, xff('192.0.2.60:4711')), 200);
    assert.equal(await streamStatus(hub.url, xff('::ffff:192.0.2.60')), 429);
    assert.equal(await streamStatus(hub.url, forwarded('for="[::ffff:c000:23c]"')), 429);
  });

  test('a malformed entry from the proxy is not a client address: it counts as the proxy', async () => {
    const hub2 = await spawnHub(['--trust-proxy', '127.0.0.1', '--max-streams-per-ip', '1']);
    try {
      assert.equal(await streamStatus(hub2.url, xff('<script>')), 200);
      assert.equal(await streamStatus(hub2.url, xff('not an address')), 429);
      assert.equal(await streamStatus(hub2.url), 429);
      // RFC 7239 §6.3: an obfuscated identifier is how a proxy names a client without its address.
      assert.equal(await streamStatus(hub2.url, forwarded('for=_hidden-client-7')), 200);
      assert.equal(await streamStatus(hub2.url, forwarded('for=_hidden-client-7')), 429);
    } finally {
      await hub2.stop();
    }
  });
});

describe('forwarded headers from a peer that is not trusted change nothing', () => {
  let hub: HubProcess;
  before(async () => {
    // Trusts a range the test's own connections are not in.
    hub = await spawnHub(['--trust-proxy', '10.0.0.0/8', '--max-streams-per-ip', '1']);
  });
  after(() => hub?.stop());

  test('every rotation of the headers is still 127.0.0.1', async () => {
    assert.equal(await streamStatus(hub.url, xff('203.0.113.1')), 200);
    assert.equal(await streamStatus(hub.url, xff('203.0.113.2')), 429);
    assert.equal(await streamStatus(hub.url, forwarded('for=203.0.113.3')), 429);
    assert.equal(await streamStatus(hub.url), 429);
  });
});

describe('IPv6 and IPv4-mapped peers (herald serve --host ::)', () => {
  let hub: HubProcess;
  let port: string;
  before(async () => {
    hub = await spawnHub([
      '--host',
      '::',
      '--jwt-secret',
      'a-secret-of-the-trust-proxy-test-0123456789',
      '--anonymous',
      '--trust-proxy',
      '127.0.0.1/32, ::1',
      '--max-streams-per-ip',
      '1',
    ]);
    port = new URL(hub.url).port;
  });
  after(() => hub?.stop());

  test('an IPv4 peer seen as ::ffff:127.0.0.1 is the trusted 127.0.0.1, and ::1 is trusted as written', async () => {
    const v4 = `http://127.0.0.1:${port}`;
    const v6 = `http://[::1]:${port}`;
    assert.equal(await streamStatus(v4, xff('203.0.113.50')), 200);
    assert.equal(
      await streamStatus(v6, xff('203.0.113.50')),
      429,
      'the same client, through the other proxy',
    );
    assert.equal(await streamStatus(v6, xff('2001:db8::50')), 200);
    assert.equal(await streamStatus(v4, forwarded('for="[2001:db8::50]"')), 429);
    // Without a header each proxy is a client of its own: both addresses are still theirs.
    assert.equal(await streamStatus(v4), 200);
    assert.equal(await streamStatus(v6), 200);
  });
});

describe('createHerald({ trustProxy }) on an embedded node:http server', () => {
  let hub: TestHub;
  before(async () => {
    hub = await startHub({ trustProxy: ['loopback'], limits: { streamsPerIp: 1 } });
  });
  after(() => hub?.close());

  test('the named range is trusted, and its clients are counted apart', async () => {
    assert.equal(await streamStatus(hub.url, xff('203.0.113.60')), 200);
    assert.equal(await streamStatus(hub.url, xff('203.0.113.60')), 429);
    assert.equal(await streamStatus(hub.url, xff('203.0.113.61')), 200);
  });

  test('an entry that is neither an address, a CIDR nor a named range stops the start, saying so', async () => {
    for (const entry of ['10.0.0.0/33', '10.0.0.0/', 'proxy.internal', '::ffff:10.0.0.0/95']) {
      const started = await startHub({ trustProxy: [entry] }).then(
        (wrongly) => wrongly,
        (error: Error) => {
          assert.match(error.message, /is not an address or a CIDR/);
          assert.ok(error.message.includes(JSON.stringify(entry)), error.message);
          return undefined;
        },
      );
      await started?.close();
      assert.equal(started, undefined, `started with trustProxy ${entry}`);
    }
  });
});

describe('createHerald({ trustProxy }) with webHandler (Hono on Node)', () => {
  let herald: Herald;
  let server: Server | undefined;
  let url: string;
  before(async () => {
    herald = createHerald({ trustProxy: '127.0.0.0/8', limits: { streamsPerIp: 1 } });
    const app = new Hono<{ Bindings: HttpBindings }>();
    // The app knows the peer (here from Node's socket); Herald decides whether to look past it.
    app.all('/*', (c) =>
      webHandler(herald, { clientAddress: () => c.env.incoming.socket.remoteAddress })(c.req.raw),
    );
    const port = await new Promise<number>((resolve) => {
      server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) =>
        resolve(info.port),
      ) as Server;
    });
    url = `http://127.0.0.1:${port}`;
  });
  after(async () => {
    for (const stream of open) stream.close();
    await herald?.close();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  });

  test('the forwarded clients of a trusted peer are counted apart', async () => {
    assert.equal(await streamStatus(url, forwarded('for=203.0.113.70')), 200);
    assert.equal(await streamStatus(url, xff('203.0.113.70')), 429);
    assert.equal(await streamStatus(url, xff('203.0.113.71')), 200);
  });
});

describe('--trust-proxy in the configuration', () => {
  test('a wrong entry stops herald serve with the flag named', async () => {
    await assert.rejects(
      spawnHub(['--trust-proxy', '10.0.0.0/33']),
      /--trust-proxy \(HERALD_TRUST_PROXY\): trust proxy: "10\.0\.0\.0\/33" is not an address or a CIDR/,
    );
  });
});
