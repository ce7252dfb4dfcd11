import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HeraldError } from '../../src/core/errors.ts';
import { Cors, normalizeOrigin } from '../../src/http/cors.ts';

const APP = 'https://app.example.com';
const METHODS = ['GET', 'POST', 'OPTIONS'] as const;

function rejects(fn: () => unknown, status: number, code: string): HeraldError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof HeraldError, `expected a HeraldError ${code}, got ${String(caught)}`);
  assert.equal(caught.status, status);
  assert.equal(caught.code, code);
  return caught;
}

describe('normalizeOrigin', () => {
  test('lower-cases scheme and host and drops a default port', () => {
    assert.equal(normalizeOrigin('HTTPS://App.Example.COM'), APP);
    assert.equal(normalizeOrigin('https://app.example.com:443'), APP);
    assert.equal(normalizeOrigin('http://app.example.com:80'), 'http://app.example.com');
    assert.equal(normalizeOrigin('wss://a.com:443'), 'wss://a.com');
    assert.equal(normalizeOrigin('http://localhost:5173'), 'http://localhost:5173');
    assert.equal(normalizeOrigin('https://app.example.com:80'), 'https://app.example.com:80');
    assert.equal(normalizeOrigin('https://a.com:0443'), 'https://a.com');
    assert.equal(normalizeOrigin('http://[::1]:8080'), 'http://[::1]:8080');
    assert.equal(normalizeOrigin('chrome-extension://abcdef'), 'chrome-extension://abcdef');
  });

  test('malformed values are not origins', () => {
    for (const value of [
      '',
      'null',
      'app.example.com',
      'https://app.example.com/',
      'https://app.example.com/path',
      'https://app.example.com?x',
      'https://user@app.example.com',
      'https://app.example.com:',
      'https://app.example.com:99999',
      'https://app.example.com:0',
      'https://app .example.com',
      'https://app.example.com\r\nset-cookie: x',
      ' https://app.example.com',
      '//app.example.com',
    ]) {
      assert.equal(normalizeOrigin(value), undefined, value);
    }
  });
});

describe('Cors: actual responses', () => {
  const cors = new Cors({ origins: [APP, 'http://localhost:5173'] });

  test('an allowed origin is echoed with credentials, Vary and exposed headers', () => {
    assert.deepEqual(cors.responseHeaders(APP), {
      'access-control-allow-origin': APP,
      'access-control-allow-credentials': 'true',
      vary: 'Origin',
      'access-control-expose-headers': 'Retry-After, WWW-Authenticate, Link',
    });
    assert.equal(cors.isAllowed(APP), true);
  });

  test('origins match after normalisation, and are echoed as the client sent them', () => {
    for (const origin of [
      'https://APP.example.com',
      'https://app.example.com:443',
      'HTTPS://app.example.com',
    ]) {
      assert.equal(cors.isAllowed(origin), true, origin);
      assert.equal(cors.responseHeaders(origin)['access-control-allow-origin'], origin);
    }
  });

  test('the port is part of the origin', () => {
    assert.equal(cors.isAllowed('http://localhost:5173'), true);
    assert.equal(cors.isAllowed('http://localhost:5174'), false);
    assert.equal(cors.isAllowed('http://localhost'), false);
    assert.equal(cors.isAllowed('https://app.example.com:8443'), false);
  });

  test('the scheme is part of the origin', () => {
    assert.equal(cors.isAllowed('http://app.example.com'), false);
  });

  test('other, missing and malformed origins get no CORS headers', () => {
    for (const origin of [
      undefined,
      'https://evil.example.com',
      'https://app.example.com.evil.com',
      'https://evil.com/https://app.example.com',
      'null',
      'not an origin',
    ]) {
      assert.deepEqual(cors.responseHeaders(origin), {}, String(origin));
      assert.equal(cors.isAllowed(origin), false, String(origin));
    }
  });

  test('an empty list allows nothing', () => {
    const none = new Cors({ origins: [] });
    assert.equal(none.isAllowed(APP), false);
    assert.deepEqual(none.responseHeaders(APP), {});
  });

  test('configured origins are normalised too, and a trailing slash is forgiven', () => {
    const configured = new Cors({ origins: ['HTTPS://App.Example.com:443/'] });
    assert.equal(configured.isAllowed(APP), true);
  });

  test('a configured value that is not an origin is refused with how to write one', () => {
    assert.throws(
      () => new Cors({ origins: ['app.example.com'] }),
      /use scheme:\/\/host\[:port\] with no path/,
    );
    assert.throws(() => new Cors({ origins: ['https://app.example.com/app'] }), /is not an origin/);
    assert.throws(() => new Cors({ origins: ['null'] }), /"null" cannot be allowed/);
    assert.throws(() => new Cors({ origins: [APP], maxAgeSec: -1 }), /maxAgeSec/);
  });
});

describe('Cors: wildcard', () => {
  test('"*" allows any origin, without credentials and without Vary', () => {
    const cors = new Cors({ origins: ['*'] });
    const headers = cors.responseHeaders('https://anyone.example');
    assert.equal(headers['access-control-allow-origin'], '*');
    assert.equal(headers['access-control-allow-credentials'], undefined);
    assert.equal(headers.vary, undefined);
    assert.equal(cors.isAllowed('null'), true);
    assert.equal(cors.isAllowed('not an origin'), false);
    assert.equal(cors.isAllowed(undefined), false);
  });

  test('next to "*", listed origins still get credentials and everyone gets Vary', () => {
    const cors = new Cors({ origins: ['*', APP] });
    assert.deepEqual(cors.responseHeaders(APP), {
      'access-control-allow-origin': APP,
      'access-control-allow-credentials': 'true',
      vary: 'Origin',
      'access-control-expose-headers': 'Retry-After, WWW-Authenticate, Link',
    });
    const other = cors.responseHeaders('https://other.example');
    assert.equal(other['access-control-allow-origin'], '*');
    assert.equal(other['access-control-allow-credentials'], undefined);
    assert.equal(other.vary, 'Origin');
  });

  test('"*" is never sent together with credentials', () => {
    const cors = new Cors({ origins: ['*', APP] });
    for (const origin of [APP, 'https://other.example', 'null']) {
      const headers = cors.responseHeaders(origin);
      const preflight = cors.preflight(origin, 'POST', METHODS)?.headers ?? {};
      for (const h of [headers, preflight]) {
        assert.ok(
          !(h['access-control-allow-origin'] === '*' && h['access-control-allow-credentials'] === 'true'),
          origin,
        );
      }
    }
  });
});

describe('Cors: preflight', () => {
  const cors = new Cors({ origins: [APP] });

  test('is not a preflight without Origin or Access-Control-Request-Method', () => {
    assert.equal(cors.preflight(undefined, 'POST', METHODS), undefined);
    assert.equal(cors.preflight(APP, undefined, METHODS), undefined);
    // Even a disallowed origin: a plain OPTIONS is the router's business.
    assert.equal(cors.preflight('https://evil.example', undefined, METHODS), undefined);
  });

  test('an allowed origin gets 204 with every preflight header', () => {
    assert.deepEqual(cors.preflight(APP, 'POST', METHODS), {
      status: 204,
      headers: {
        'access-control-allow-origin': APP,
        'access-control-allow-credentials': 'true',
        vary: 'Origin',
        'access-control-allow-methods': 'GET, POST, OPTIONS',
        'access-control-allow-headers': 'Authorization, Content-Type, Last-Event-ID, Cache-Control',
        'access-control-max-age': '600',
      },
    });
  });

  test('Allow-Headers covers the requested headers case-insensitively', () => {
    const answer = cors.preflight(APP, 'GET', ['GET']);
    const allowed = (answer?.headers['access-control-allow-headers'] ?? '').toLowerCase().split(', ');
    for (const requested of ['last-event-id', 'cache-control']) assert.ok(allowed.includes(requested));
    assert.ok(!allowed.includes('x-custom'));
    assert.equal(answer?.headers['access-control-allow-methods'], 'GET');
  });

  test('Max-Age is configurable', () => {
    const short = new Cors({ origins: [APP], maxAgeSec: 5 });
    assert.equal(short.preflight(APP, 'GET', ['GET'])?.headers['access-control-max-age'], '5');
  });

  test('with "*" the preflight answers "*" without credentials', () => {
    const any = new Cors({ origins: ['*'] });
    const headers = any.preflight('https://other.example', 'POST', METHODS)?.headers;
    assert.equal(headers?.['access-control-allow-origin'], '*');
    assert.equal(headers?.['access-control-allow-credentials'], undefined);
    assert.match(headers?.['access-control-allow-headers'] ?? '', /Authorization/);
  });

  test('a disallowed origin gets 403 naming the origin and --cors-origin', () => {
    const error = rejects(
      () => cors.preflight('https://evil.example', 'POST', METHODS),
      403,
      'cors-origin-denied',
    );
    assert.match(error.detail, /"https:\/\/evil\.example" is not allowed/);
    assert.match(error.detail, /--cors-origin/);
  });

  test('a huge Origin is not copied whole into the detail', () => {
    const origin = `https://${'a'.repeat(10_000)}.example`;
    const error = rejects(() => cors.preflight(origin, 'POST', METHODS), 403, 'cors-origin-denied');
    assert.ok(error.detail.length < 500);
  });
});

describe('Cors: CSRF origin check for cookie-authenticated requests', () => {
  test('passes for a listed origin, normalised', () => {
    const cors = new Cors({ origins: [APP] });
    cors.checkCookieOrigin(APP);
    cors.checkCookieOrigin('https://APP.example.com:443');
  });

  test('refuses a missing Origin, saying what to do', () => {
    const cors = new Cors({ origins: [APP] });
    for (const origin of [undefined, '']) {
      const error = rejects(() => cors.checkCookieOrigin(origin), 403, 'origin-not-allowed');
      assert.match(error.detail, /must carry an Origin header/);
      assert.match(error.detail, /Authorization header/);
    }
  });

  test('refuses an unlisted, malformed or "null" origin', () => {
    const cors = new Cors({ origins: [APP] });
    for (const origin of ['https://evil.example', 'http://app.example.com', 'null', 'garbage']) {
      const error = rejects(() => cors.checkCookieOrigin(origin), 403, 'origin-not-allowed');
      assert.match(error.detail, /--cors-origin/);
    }
  });

  test('"*" does not count: cookies from any origin would defeat the check', () => {
    const wildcard = new Cors({ origins: ['*'] });
    assert.equal(wildcard.isAllowed('https://evil.example'), true);
    rejects(() => wildcard.checkCookieOrigin('https://evil.example'), 403, 'origin-not-allowed');
    const mixed = new Cors({ origins: ['*', APP] });
    mixed.checkCookieOrigin(APP);
    rejects(() => mixed.checkCookieOrigin('https://evil.example'), 403, 'origin-not-allowed');
  });

  test("passes for a page of the hub's own origin (Origin names the Host), and only that host", () => {
    const none = new Cors({ origins: [] });
    none.checkCookieOrigin('https://hub.example', 'hub.example');
    none.checkCookieOrigin('http://127.0.0.1:8080', '127.0.0.1:8080');
    for (const [origin, host] of [
      ['https://evil.example', 'hub.example'],
      ['http://127.0.0.1:9999', '127.0.0.1:8080'],
      ['https://hub.example.evil.example', 'hub.example'],
      ['null', 'hub.example'],
      ['https://hub.example', 'hub.example/x'],
    ] as const) {
      rejects(() => none.checkCookieOrigin(origin, host), 403, 'origin-not-allowed');
    }
    rejects(() => none.checkCookieOrigin(undefined, 'hub.example'), 403, 'origin-not-allowed');
  });
});
