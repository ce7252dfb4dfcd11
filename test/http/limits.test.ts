import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HeraldError } from '../../src/core/errors.ts';
import { DEFAULT_LIMITS, type LimitOptions, Limits } from '../../src/http/limits.ts';
import { type HubProcess, spawnHub } from '../helpers/nodes.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';
import { bearer as mercureBearer, mercurePublish, mercureToken } from '../mercure/mercure-client.ts';

/** A clock the test moves by hand. */
class Clock {
  ms = 1_000_000;
  readonly now = () => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

function setup(options: LimitOptions = {}) {
  const clock = new Clock();
  return { clock, limits: new Limits(options, clock.now) };
}

/** Asserts that `fn` throws a HeraldError with this status and code, and returns it. */
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

const retryAfter = (error: HeraldError) => error.headers['retry-after'];

describe('Limits: connections per IP', () => {
  test('the defaults are 100/s with a burst of 1000', () => {
    assert.equal(DEFAULT_LIMITS.connectionsPerSecondPerIp, 100);
    assert.equal(DEFAULT_LIMITS.connectionBurstPerIp, 1_000);
    const { limits } = setup();
    for (let i = 0; i < 1_000; i++) limits.admitRequest('10.0.0.1');
    const error = rejects(() => limits.admitRequest('10.0.0.1'), 429, 'too-many-connections');
    assert.equal(retryAfter(error), '1');
    assert.match(error.detail, /wait 1 second before retrying/);
  });

  test('a burst is allowed at once, then the bucket refills at the rate', () => {
    const { clock, limits } = setup({ connectionsPerSecondPerIp: 2, connectionBurstPerIp: 5 });
    for (let i = 0; i < 5; i++) limits.admitRequest('ip');
    rejects(() => limits.admitRequest('ip'), 429, 'too-many-connections');
    clock.advance(499);
    rejects(() => limits.admitRequest('ip'), 429, 'too-many-connections');
    clock.advance(1);
    limits.admitRequest('ip');
    rejects(() => limits.admitRequest('ip'), 429, 'too-many-connections');
    // Refilling never goes past the burst.
    clock.advance(60_000);
    for (let i = 0; i < 5; i++) limits.admitRequest('ip');
    rejects(() => limits.admitRequest('ip'), 429, 'too-many-connections');
  });

  test('Retry-After is the whole seconds until a token is back, at least 1', () => {
    const { clock, limits } = setup({ connectionsPerSecondPerIp: 0.25, connectionBurstPerIp: 1 });
    limits.admitRequest('ip');
    assert.equal(retryAfter(rejects(() => limits.admitRequest('ip'), 429, 'too-many-connections')), '4');
    clock.advance(2_500);
    assert.equal(retryAfter(rejects(() => limits.admitRequest('ip'), 429, 'too-many-connections')), '2');
    clock.advance(1_400);
    assert.equal(retryAfter(rejects(() => limits.admitRequest('ip'), 429, 'too-many-connections')), '1');
    clock.advance(100);
    limits.admitRequest('ip');
  });

  test('waiting exactly the advertised Retry-After is always enough', () => {
    const { clock, limits } = setup({ connectionsPerSecondPerIp: 3, connectionBurstPerIp: 1 });
    limits.admitRequest('ip');
    for (let i = 0; i < 50; i++) {
      const error = rejects(() => limits.admitRequest('ip'), 429, 'too-many-connections');
      clock.advance(Number(retryAfter(error)) * 1000);
      limits.admitRequest('ip');
    }
  });

  test('IPs have separate buckets', () => {
    const { limits } = setup({ connectionsPerSecondPerIp: 1, connectionBurstPerIp: 1 });
    limits.admitRequest('a');
    rejects(() => limits.admitRequest('a'), 429, 'too-many-connections');
    limits.admitRequest('b');
  });

  test('0 disables the limit and tracks nothing', () => {
    const { limits } = setup({ connectionsPerSecondPerIp: 0 });
    for (let i = 0; i < 10_000; i++) limits.admitRequest('ip');
    assert.equal(limits.snapshot().trackedIps, 0);
  });

  test('a bucket that has refilled is forgotten', () => {
    const { clock, limits } = setup();
    limits.admitRequest('a');
    limits.admitRequest('b');
    assert.equal(limits.snapshot().trackedIps, 2);
    clock.advance(1_000);
    limits.admitRequest('c');
    assert.equal(limits.snapshot().trackedIps, 1);
  });

  test('memory stays bounded under 100 000 distinct IPs with a frozen clock (the cap)', () => {
    const { limits } = setup({ maxTrackedKeys: 1_000 });
    for (let i = 0; i < 100_000; i++) limits.admitRequest(`ip-${i}`);
    const snapshot = limits.snapshot();
    assert.equal(snapshot.trackedIps, 1_000);
    assert.equal(snapshot.evictedBuckets, 99_000);
  });

  test('memory stays bounded under 100 000 distinct IPs at the default settings', () => {
    const { limits } = setup();
    for (let i = 0; i < 100_000; i++) limits.admitRequest(`ip-${i}`);
    assert.equal(limits.snapshot().trackedIps, DEFAULT_LIMITS.maxTrackedKeys);
  });

  test('memory follows the recent request rate: idle IPs are swept as requests arrive', () => {
    const { clock, limits } = setup();
    let peak = 0;
    // 100 000 distinct IPs at 10 000 new IPs a second: one token refills in 50 ms, so only the
    // last ~500 IPs are in debt at any time.
    for (let i = 0; i < 100_000; i++) {
      limits.admitRequest(`ip-${i}`);
      clock.advance(0.1);
      peak = Math.max(peak, limits.snapshot().trackedIps as number);
    }
    assert.ok(peak <= 502, `peak ${peak}`);
    assert.equal(limits.snapshot().evictedBuckets, 0);
  });

  test('a busy IP is not swept while idle ones are', () => {
    const { clock, limits } = setup({ connectionsPerSecondPerIp: 1, connectionBurstPerIp: 2 });
    limits.admitRequest('busy');
    limits.admitRequest('busy');
    for (let i = 0; i < 100; i++) {
      clock.advance(10);
      limits.admitRequest(`idle-${i}`);
    }
    // 1 s has passed: "busy" got one token back and still has only that one.
    limits.admitRequest('busy');
    rejects(() => limits.admitRequest('busy'), 429, 'too-many-connections');
  });
});

describe('Limits: open streams', () => {
  test('the defaults are 1 000 per subject, and no limit per IP (proxies) or per tenant', () => {
    assert.equal(DEFAULT_LIMITS.streamsPerIp, 0);
    assert.equal(DEFAULT_LIMITS.streamsPerSubject, 1_000);
    assert.equal(DEFAULT_LIMITS.streamsPerTenant, 0);
  });

  test('per IP: the detail names the limit and Retry-After is set', () => {
    const { limits } = setup({ streamsPerIp: 100 });
    for (let i = 0; i < 100; i++) limits.openStream('ip', `user-${i}`, 't');
    const error = rejects(() => limits.openStream('ip', 'someone', 't'), 429, 'too-many-streams');
    assert.match(error.detail, /^this IP already has 100 open streams; the limit is 100/);
    assert.ok(Number(retryAfter(error)) >= 1);
    limits.openStream('other-ip', 'someone', 't');
  });

  test('per subject, across IPs', () => {
    const { limits } = setup({ streamsPerSubject: 2 });
    limits.openStream('a', 'alice', 't');
    limits.openStream('b', 'alice', 't');
    const error = rejects(() => limits.openStream('c', 'alice', 't'), 429, 'too-many-streams');
    assert.match(error.detail, /^this subject already has 2 open streams; the limit is 2/);
    limits.openStream('c', 'bob', 't');
  });

  test('anonymous streams count against IP and tenant only', () => {
    const { limits } = setup({ streamsPerSubject: 1, streamsPerIp: 3 });
    limits.openStream('a', undefined, 't');
    limits.openStream('a', undefined, 't');
    limits.openStream('a', undefined, 't');
    rejects(() => limits.openStream('a', undefined, 't'), 429, 'too-many-streams');
    assert.equal(limits.snapshot().subjectsWithStreams, 0);
  });

  test('per tenant, across IPs and subjects', () => {
    const { limits } = setup({ streamsPerTenant: 2 });
    limits.openStream('a', 'alice', 'acme');
    limits.openStream('b', 'bob', 'acme');
    const error = rejects(() => limits.openStream('c', 'carol', 'acme'), 429, 'too-many-streams');
    assert.match(error.detail, /^this tenant already has 2 open streams; the limit is 2/);
    limits.openStream('c', 'carol', 'globex');
  });

  test('a refused stream reserves nothing', () => {
    const { limits } = setup({ streamsPerIp: 5, streamsPerTenant: 1 });
    limits.openStream('a', 'alice', 'acme');
    for (let i = 0; i < 10; i++)
      rejects(() => limits.openStream('a', 'alice', 'acme'), 429, 'too-many-streams');
    for (let i = 0; i < 4; i++) limits.openStream('a', 'alice', `other-${i}`);
  });

  test('release frees the slots once, however often it is called', () => {
    const { limits } = setup({ streamsPerIp: 2 });
    const first = limits.openStream('a', 'alice', 't');
    limits.openStream('a', 'bob', 't');
    rejects(() => limits.openStream('a', 'carol', 't'), 429, 'too-many-streams');
    first();
    first();
    first();
    assert.equal(limits.snapshot().openStreams, 1);
    limits.openStream('a', 'carol', 't');
    rejects(() => limits.openStream('a', 'dave', 't'), 429, 'too-many-streams');
  });

  test('0 disables each stream limit separately', () => {
    const ip = setup({ streamsPerIp: 0, streamsPerSubject: 1_000, streamsPerTenant: 1_000 }).limits;
    for (let i = 0; i < 500; i++) ip.openStream('a', `user-${i}`, 't');
    assert.equal(ip.snapshot().ipsWithStreams, 0);
    const subject = setup({ streamsPerIp: 1_000, streamsPerSubject: 0, streamsPerTenant: 1_000 }).limits;
    for (let i = 0; i < 500; i++) subject.openStream('a', 'alice', 't');
    const tenant = setup({ streamsPerIp: 0, streamsPerSubject: 0, streamsPerTenant: 0 }).limits;
    for (let i = 0; i < 20_000; i++) tenant.openStream('a', 'alice', 't');
    assert.equal(tenant.snapshot().openStreams, 20_000);
  });

  test('counts are forgotten when the last stream of a key closes', () => {
    const { limits } = setup({ streamsPerIp: 100, streamsPerTenant: 10_000 });
    const releases = [];
    for (let i = 0; i < 1_000; i++)
      releases.push(limits.openStream(`ip-${i}`, `user-${i}`, `tenant-${i % 20}`));
    let snapshot = limits.snapshot();
    assert.equal(snapshot.openStreams, 1_000);
    assert.equal(snapshot.ipsWithStreams, 1_000);
    assert.equal(snapshot.tenantsWithStreams, 20);
    assert.equal(Object.keys(snapshot.streamsByTenant as object).length, 10);
    for (const release of releases) release();
    snapshot = limits.snapshot();
    assert.equal(snapshot.openStreams, 0);
    assert.equal(snapshot.ipsWithStreams, 0);
    assert.equal(snapshot.subjectsWithStreams, 0);
    assert.equal(snapshot.tenantsWithStreams, 0);
  });

  test('the snapshot lists the busiest tenants first', () => {
    const { limits } = setup();
    limits.openStream('a', undefined, 'small');
    for (let i = 0; i < 3; i++) limits.openStream('a', undefined, 'big');
    for (let i = 0; i < 2; i++) limits.openStream('a', undefined, '');
    assert.deepEqual(Object.entries(limits.snapshot().streamsByTenant as object), [
      ['big', 3],
      ['', 2],
      ['small', 1],
    ]);
  });
});

describe('Limits: publishes per subject', () => {
  test('the defaults are 10 000 events/s with a burst of 20 000', () => {
    assert.equal(DEFAULT_LIMITS.publishesPerSecondPerSubject, 10_000);
    assert.equal(DEFAULT_LIMITS.publishBurstPerSubject, 20_000);
    const { limits } = setup();
    limits.admitPublish('alice', 10_000);
    limits.admitPublish('alice', 10_000);
    const error = rejects(() => limits.admitPublish('alice', 1), 429, 'publish-rate-exceeded');
    assert.equal(retryAfter(error), '1');
  });

  test('the bucket counts events, not requests, and Retry-After covers the whole batch', () => {
    const { clock, limits } = setup({ publishesPerSecondPerSubject: 10, publishBurstPerSubject: 50 });
    limits.admitPublish('alice', 40);
    const error = rejects(() => limits.admitPublish('alice', 45), 429, 'publish-rate-exceeded');
    // 10 tokens left, 35 missing at 10/s: 3.5 s, rounded up.
    assert.equal(retryAfter(error), '4');
    assert.match(error.detail, /batch of 45 events/);
    limits.admitPublish('alice', 10);
    clock.advance(2_000);
    rejects(() => limits.admitPublish('alice', 21), 429, 'publish-rate-exceeded');
    limits.admitPublish('alice', 20);
    limits.admitPublish('bob', 50);
  });

  test('a batch larger than the burst could never fit and is refused with 413', () => {
    const { limits } = setup({ publishesPerSecondPerSubject: 10, publishBurstPerSubject: 50 });
    const error = rejects(() => limits.admitPublish('alice', 51), 413, 'batch-too-large');
    assert.match(error.detail, /at most 50/);
    limits.admitPublish('alice', 50);
  });

  test('0 disables it', () => {
    const { limits } = setup({ publishesPerSecondPerSubject: 0 });
    for (let i = 0; i < 100; i++) limits.admitPublish('alice', 1_000_000);
    assert.equal(limits.snapshot().trackedPublishers, 0);
  });

  test('publishing subjects are bounded like IPs', () => {
    const { limits } = setup({ maxTrackedKeys: 100 });
    for (let i = 0; i < 10_000; i++) limits.admitPublish(`subject-${i}`, 1);
    assert.equal(limits.snapshot().trackedPublishers, 100);
  });

  test('rejections are counted in the snapshot', () => {
    const { limits } = setup({ publishesPerSecondPerSubject: 1, publishBurstPerSubject: 1, streamsPerIp: 1 });
    limits.admitPublish('a', 1);
    rejects(() => limits.admitPublish('a', 1), 429, 'publish-rate-exceeded');
    limits.openStream('ip', undefined, '');
    rejects(() => limits.openStream('ip', undefined, ''), 429, 'too-many-streams');
    assert.deepEqual(limits.snapshot().rejected, { connections: 0, streams: 1, publishes: 1 });
  });
});

describe('Limits: options', () => {
  test('invalid values are refused with what to use instead', () => {
    assert.throws(() => new Limits({ connectionsPerSecondPerIp: -1 }), /use a number of 0 or more/);
    assert.throws(
      () => new Limits({ publishBurstPerSubject: 0 }),
      /publishBurstPerSubject is 0; use a number of 1/,
    );
    assert.throws(() => new Limits({ streamsPerIp: 1.5 }), /whole number/);
    assert.throws(() => new Limits({ maxTrackedKeys: 0 }), /maxTrackedKeys/);
    // A burst does not matter when its rate disables the bucket.
    new Limits({ publishesPerSecondPerSubject: 0, publishBurstPerSubject: 0 });
  });

  test('a clock going backwards never adds tokens', () => {
    const { clock, limits } = setup({ connectionsPerSecondPerIp: 1, connectionBurstPerIp: 1 });
    limits.admitRequest('ip');
    clock.advance(-10_000);
    rejects(() => limits.admitRequest('ip'), 429, 'too-many-connections');
  });
});

describe('Limits: publishes are counted against their credential, not their IP', () => {
  const publish = (path = '/v1/publish') => ({ method: 'POST', path, remoteAddress: 'ip' });
  const refused = new HeraldError(401, 'token-signature-invalid', 'no');

  test('a publish needs a token left in its IP bucket but takes none; anything else takes one', () => {
    const { limits } = setup({ connectionsPerSecondPerIp: 1, connectionBurstPerIp: 5 });
    for (let i = 0; i < 1_000; i++) {
      limits.admit(publish());
      limits.admit(publish('/.well-known/mercure'));
    }
    for (let i = 0; i < 5; i++) limits.admit({ method: 'GET', path: '/v1/events', remoteAddress: 'ip' });
    rejects(
      () => limits.admit({ method: 'GET', path: '/healthz', remoteAddress: 'ip' }),
      429,
      'too-many-connections',
    );
    rejects(() => limits.admit(publish()), 429, 'too-many-connections');
  });

  test('a publish whose credential is refused costs its IP a request; once none is left, publishes are refused before verification', () => {
    const { clock, limits } = setup({ connectionsPerSecondPerIp: 1, connectionBurstPerIp: 5 });
    for (let i = 0; i < 5; i++) {
      limits.admit(publish());
      limits.chargeRefusedCredential(
        publish(),
        i % 2 === 0 ? refused : new HeraldError(403, 'key-role-forbidden', 'no'),
      );
    }
    const error = rejects(() => limits.admit(publish()), 429, 'too-many-connections');
    assert.match(error.detail, /publishes whose credential was refused count too/);
    assert.equal(retryAfter(error), '1');
    clock.advance(1_000);
    limits.admit(publish());
  });

  test('only refusals of the credential count: a hub that cannot verify (503) or a bad body does not charge the IP', () => {
    const { limits } = setup({ connectionsPerSecondPerIp: 1, connectionBurstPerIp: 1 });
    limits.chargeRefusedCredential(publish(), new HeraldError(503, 'jwks-unavailable', 'later'));
    limits.chargeRefusedCredential(publish(), new HeraldError(400, 'malformed-json', 'bad'));
    limits.chargeRefusedCredential(publish(), new Error('boom'));
    limits.admitRequest('ip');
  });

  test('the bucket is the subject within its tenant, else the tenant', () => {
    const { limits } = setup({ publishesPerSecondPerSubject: 1, publishBurstPerSubject: 5 });
    limits.admitPublish({ tenant: 'acme', subject: 'alice' }, 5);
    rejects(() => limits.admitPublish({ tenant: 'acme', subject: 'alice' }, 1), 429, 'publish-rate-exceeded');
    // Another tenant's issuer may have an alice too: not the same credential.
    limits.admitPublish({ tenant: 'globex', subject: 'alice' }, 5);
    // Tokens without a subject share their tenant's bucket, and no other.
    limits.admitPublish({ tenant: 'acme' }, 5);
    const error = rejects(() => limits.admitPublish({ tenant: 'acme' }, 1), 429, 'publish-rate-exceeded');
    assert.match(error.detail, /this tenant's tokens without a subject are publishing faster/);
    limits.admitPublish({ tenant: 'globex' }, 5);
    // A subject named like a tenant's bucket is still a subject.
    limits.admitPublish({ tenant: '', subject: 'acme' }, 5);
  });
});

describe('herald serve: publishers are limited per credential, not by the per-IP request rate', () => {
  let hub: HubProcess;
  before(async () => {
    // A tight per-IP rate, so that counting publishes against it would show within a few requests.
    hub = await spawnHub(['--jwt-secret', SECRET, '--ip-connection-rate', '1', '--ip-connection-burst', '5']);
  });
  after(() => hub?.stop());

  const publish = async (jwt: string, body: unknown = { topic: 'orders/1', data: { step: 1 } }) => {
    const response = await fetch(`${hub.url}/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(jwt) },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: await response.text() };
  };

  test('a backend publishing one event per request, on both APIs, is never refused for its IP', async () => {
    const backend = await token({ sub: 'billing-service', publish: ['orders/{id}'] });
    for (let i = 0; i < 60; i++) {
      const answer = await publish(backend);
      assert.equal(answer.status, 202, `publish ${i}: ${answer.body}`);
    }
    const publisher = mercureBearer(await mercureToken({ publish: ['*'] }, { secret: SECRET }));
    for (let i = 0; i < 20; i++) {
      const answer = await mercurePublish(hub.url, { topic: 'orders/1', data: String(i) }, publisher);
      assert.equal(answer.status, 200, `Mercure publish ${i}: ${answer.body}`);
    }
  });

  test('publishes with refused credentials use up their IP, and then nothing more is verified from it', async () => {
    const forged = await token({
      sub: 'mallory',
      publish: ['*'],
      secret: 'not-the-hub-secret-but-as-long-as-one',
    });
    let answer = await publish(forged);
    for (let i = 0; i < 50 && answer.status === 401; i++) answer = await publish(forged);
    assert.equal(answer.status, 429, answer.body);
    assert.match(JSON.parse(answer.body).detail, /publishes whose credential was refused count too/);
    const exhaustedAt = Date.now();
    const genuine = await publish(await token({ sub: 'billing-service', publish: ['orders/{id}'] }));
    // The bucket refills one request a second: only a machine that stalled that long lets it in.
    assert.ok(
      genuine.status === 429 || Date.now() - exhaustedAt >= 1_000,
      `a valid publish from the exhausted IP: ${genuine.status}`,
    );
  });
});

describe('herald serve: each credential has its own publish bucket', () => {
  let hub: HubProcess;
  before(async () => {
    hub = await spawnHub(['--jwt-secret', SECRET, '--publish-rate', '1', '--publish-burst', '5']);
  });
  after(() => hub?.stop());

  /** Publishes a batch of 5, as much as the burst holds: a second one needs 5 s of refill. */
  const batch = async (jwt: string) => {
    const events = Array.from({ length: 5 }, (_, i) => ({ topic: 'a', data: i }));
    const response = await fetch(`${hub.url}/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(jwt) },
      body: JSON.stringify(events),
    });
    return { status: response.status, body: await response.text() };
  };

  test('subjects are counted within their tenant, and tokens without one per tenant, never per IP', async () => {
    const aliceAtAcme = await token({ tenant: 'acme', sub: 'alice', publish: ['*'] });
    assert.equal((await batch(aliceAtAcme)).status, 202);
    assert.equal((await batch(aliceAtAcme)).status, 429);
    assert.equal((await batch(await token({ tenant: 'globex', sub: 'alice', publish: ['*'] }))).status, 202);
    // Subject-less tokens of one tenant share a bucket; another tenant's, from the same IP, does not.
    assert.equal((await batch(await token({ tenant: 'acme', publish: ['*'] }))).status, 202);
    const sameTenant = await batch(await token({ tenant: 'acme', publish: ['a'] }));
    assert.equal(sameTenant.status, 429, sameTenant.body);
    assert.match(JSON.parse(sameTenant.body).detail, /tokens without a subject/);
    assert.equal((await batch(await token({ tenant: 'globex', publish: ['*'] }))).status, 202);
  });
});
