import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { captures, mapMessage } from '../../src/bridges/map.ts';
import { BRIDGE_SYNTAX, parseBridgeSpec } from '../../src/bridges/spec.ts';

const SEED_002 = 'redis:merchant:*:progress -> merchants/{1}/progress tenant=merchantId type=type';
const SEED_003 = "nats:metrics.* -> companies/{companyId}/metrics/{1} tenant=companyId type='metric_updated'";

function refused(spec: string, reason: RegExp): void {
  assert.throws(
    () => parseBridgeSpec(spec),
    (error: Error) => {
      assert.match(error.message, reason);
      assert.ok(error.message.includes(JSON.stringify(spec)), 'the message quotes the spec');
      assert.ok(error.message.includes(BRIDGE_SYNTAX), 'the message shows the syntax');
      return true;
    },
  );
}

function mapFails(spec: string, channel: string, body: string, reason: RegExp): void {
  assert.throws(() => mapMessage(parseBridgeSpec(spec), channel, body), reason);
}

describe('parseBridgeSpec', () => {
  it('parses the seed 002 bridge: a Redis glob, a capture, fields for tenant and type', () => {
    const spec = parseBridgeSpec(SEED_002);
    assert.equal(spec.kind, 'redis');
    assert.equal(spec.pattern, 'merchant:*:progress');
    assert.equal(spec.source, 'redis:merchant:*:progress');
    assert.equal(spec.wildcards, 1);
    assert.deepEqual(spec.topic, [
      { kind: 'text', text: 'merchants/' },
      { kind: 'capture', index: 1 },
      { kind: 'text', text: '/progress' },
    ]);
    assert.deepEqual(spec.tenant, { from: 'field', field: { name: 'merchantId', path: ['merchantId'] } });
    assert.deepEqual(spec.type, { from: 'field', field: { name: 'type', path: ['type'] } });
    assert.equal(spec.id, undefined);
    assert.equal(spec.text, SEED_002);
  });

  it('parses the seed 003 bridge: a NATS wildcard, a field in the topic, a fixed type', () => {
    const spec = parseBridgeSpec(SEED_003);
    assert.equal(spec.kind, 'nats');
    assert.equal(spec.pattern, 'metrics.*');
    assert.equal(spec.wildcards, 1);
    assert.deepEqual(spec.type, { from: 'fixed', value: 'metric_updated' });
    assert.equal(spec.text, SEED_003);
  });

  it('takes a bare source: the channel or subject itself is the topic, tenant "" and untyped', () => {
    const spec = parseBridgeSpec('nats:metrics.>');
    assert.equal(spec.topic, undefined);
    assert.equal(spec.tenant, undefined);
    assert.equal(spec.type, undefined);
    assert.equal(spec.readsFields, false);
    assert.deepEqual(mapMessage(spec, 'metrics.a.b', '{"x":1}'), {
      topic: 'metrics.a.b',
      data: { x: 1 },
      tenant: '',
    });
  });

  it('accepts options in any order, extra spaces, double quotes and quoted values with spaces', () => {
    const spec = parseBridgeSpec(`  redis:a:*   type="x y"  tenant='acme corp'\tid=meta.eventId `);
    assert.deepEqual(spec.type, { from: 'fixed', value: 'x y' });
    assert.deepEqual(spec.tenant, { from: 'fixed', value: 'acme corp' });
    assert.deepEqual(spec.id, { name: 'meta.eventId', path: ['meta', 'eventId'] });
    assert.equal(spec.text, `redis:a:* tenant='acme corp' type='x y' id=meta.eventId`);
    assert.equal(parseBridgeSpec(spec.text).text, spec.text, 'the canonical form parses to itself');
  });

  it('takes tenant= and type= as templates when they hold a brace', () => {
    const spec = parseBridgeSpec('redis:merchant:*:* -> merchants/{1}/{2} tenant={1} type=po.{2}');
    assert.deepEqual(spec.tenant, { from: 'template', parts: [{ kind: 'capture', index: 1 }] });
    assert.deepEqual(spec.type, {
      from: 'template',
      parts: [
        { kind: 'text', text: 'po.' },
        { kind: 'capture', index: 2 },
      ],
    });
    assert.equal(spec.readsFields, false);
    assert.equal(spec.text, 'redis:merchant:*:* -> merchants/{1}/{2} tenant={1} type=po.{2}');
    assert.equal(parseBridgeSpec('nats:a tenant=org-{org.id}').readsFields, true);
  });

  it('takes key= as a field, a quoted fixed value or a template, and formats it after type=', () => {
    const field = parseBridgeSpec(
      'redis:merchant:*:* -> purchase-orders/{poId} key=poId tenant={1} type={2}',
    );
    assert.deepEqual(field.key, { from: 'field', field: { name: 'poId', path: ['poId'] } });
    assert.equal(field.readsFields, true);
    assert.equal(field.text, 'redis:merchant:*:* -> purchase-orders/{poId} tenant={1} type={2} key=poId');

    const fixed = parseBridgeSpec(`nats:m.* -> m/{1} key="the value" id=eventId`);
    assert.deepEqual(fixed.key, { from: 'fixed', value: 'the value' });
    assert.equal(fixed.text, "nats:m.* -> m/{1} key='the value' id=eventId");

    const template = parseBridgeSpec('nats:journey.*.* -> companies/{1}/journey/{2} key=flag:{user.id}');
    assert.deepEqual(template.key, {
      from: 'template',
      parts: [
        { kind: 'text', text: 'flag:' },
        { kind: 'field', field: { name: 'user.id', path: ['user', 'id'] } },
      ],
    });
    assert.equal(template.readsFields, true);
    assert.equal(parseBridgeSpec('nats:a.* key=metric:{1}').readsFields, false);
    assert.equal(parseBridgeSpec('redis:a key="it\'s"').text, `redis:a key="it's"`);

    for (const spec of [field, fixed, template]) {
      assert.equal(parseBridgeSpec(spec.text).text, spec.text, 'the canonical form parses to itself');
      assert.deepEqual(parseBridgeSpec(spec.text).key, spec.key);
    }
  });

  it("accepts tenant='' as the default tenant, spelled out", () => {
    assert.deepEqual(parseBridgeSpec("nats:a tenant=''").tenant, { from: 'fixed', value: '' });
  });

  it('reads {source}, {{ }} escapes, dotted fields and quoted templates in the topic', () => {
    const spec = parseBridgeSpec("redis:x:* -> 'all {{x}}/{source}/{a.b}/{1}'");
    assert.deepEqual(spec.topic, [
      { kind: 'text', text: 'all {x}/' },
      { kind: 'source' },
      { kind: 'text', text: '/' },
      { kind: 'field', field: { name: 'a.b', path: ['a', 'b'] } },
      { kind: 'text', text: '/' },
      { kind: 'capture', index: 1 },
    ]);
    assert.equal(spec.text, "redis:x:* -> 'all {{x}}/{source}/{a.b}/{1}'");
    assert.equal(mapMessage(spec, 'x:7', '{"a":{"b":"B"}}').topic, 'all {x}/x:7/B/7');
  });

  it('counts only * as a capturing wildcard of a Redis glob; ?, [...] and \\* do not capture', () => {
    assert.equal(parseBridgeSpec('redis:a?[bc][^d-f]\\*:*').wildcards, 1);
    assert.equal(parseBridgeSpec('redis:*:*:*').wildcards, 3);
  });

  it('counts * and > of a NATS subject', () => {
    assert.equal(parseBridgeSpec('nats:a.*.b.>').wildcards, 2);
    assert.equal(parseBridgeSpec('nats:a.b').wildcards, 0);
  });

  describe('refuses, saying what is wrong and showing the syntax', () => {
    it('an empty spec', () => refused('  ', /it is empty/));
    it('an unknown source', () => refused('kafka:topic', /must start with "redis:" or "nats:"/));
    it('a source without a colon', () => refused('merchant', /must start with "redis:" or "nats:"/));
    it('a source without a pattern', () => refused('redis:', /no channel pattern/));
    it('"->" without spaces', () => refused('redis:a:*->b/{1}', /spaces around "->"/));
    it('"->" without a template', () => refused('redis:a:* ->', /followed by a topic template/));
    it('"->" followed by an option', () => refused('redis:a:* -> tenant=x', /followed by a topic template/));
    it('a second "->"', () => refused('redis:a -> b -> c', /"->" comes once/));
    it('a capture beyond the wildcards', () =>
      refused('redis:merchant:*:progress -> m/{2}', /\{2\} refers to no wildcard: the source has 1/));
    it('a capture when there is no wildcard', () => refused('nats:a.b -> x/{1}', /the source has none/));
    it('a capture beyond the wildcards in tenant=', () =>
      refused('nats:a.* tenant={2}', /\{2\} refers to no wildcard/));
    it('{0}', () => refused('nats:a.* -> x/{0}', /\{0\} refers to no wildcard/));
    it('an unclosed {', () => refused('nats:a.* -> x/{1', /"\{" without "\}"/));
    it('a stray }', () => refused('nats:a.* -> x}/{1}', /"\}" without "\{"/));
    it('an empty template', () => refused("nats:a -> ''", /template is empty/));
    it('a bad field name in the template', () => refused('nats:a -> x/{a..b}', /not a field name/));
    it('an unknown option', () => refused('nats:a prio=x', /unknown option "prio"/));
    it('an option given twice', () => refused('nats:a tenant=x tenant=y', /tenant= is given twice/));
    it('an option without a value', () => refused('nats:a tenant=', /tenant= needs a field name/));
    it('a stray word', () => refused('nats:a b', /unexpected "b"/));
    it('an unclosed quote', () => refused("nats:a tenant='acme", /a ' is not closed/));
    it('a fixed id', () => refused("nats:a id='x'", /id= takes a field name/));
    it('an empty fixed type', () => refused("nats:a type=''", /type='' is empty/));
    it('an empty fixed key', () => refused("nats:a key=''", /key='' is empty/));
    it('a key given twice', () => refused("nats:a key=x key='y'", /key= is given twice/));
    it('a key without a value', () => refused('nats:a key=', /key= needs a field name, a quoted value/));
    it('a bad field name in key=', () => refused('nats:a key=a[0]', /key= "a\[0\]" is not a field name/));
    it('a capture beyond the wildcards in key=', () =>
      refused('nats:a.* key={2}', /\{2\} refers to no wildcard/));
    it('"->" followed by key=', () => refused('nats:a -> key=x', /followed by a topic template/));
    it('the reserved tenant *', () => refused("nats:a tenant='*'", /tenant '\*' is reserved/));
    it('a reserved type', () => refused("nats:a type='herald.gap'", /Herald's own/));
    it('a field name with spaces or brackets', () => refused('nats:a tenant=a[0]', /not a field name/));
    it('an unclosed [ in a Redis glob', () => refused('redis:a[bc', /"\[" without "\]"/));
    it('an empty [] in a Redis glob', () => refused('redis:a[]', /empty "\[\]"/));
    it('a trailing backslash in a Redis glob', () => refused('redis:a\\', /lone "\\"/));
    it('an empty NATS token', () => refused('nats:a..b', /empty token/));
    it('a NATS > before the end', () => refused('nats:a.>.b', /">" may only be the last token/));
    it('a partial NATS wildcard', () => refused('nats:metrics*', /a wildcard must be a whole token/));
    it('too many wildcards', () => refused(`redis:${'*:'.repeat(17)}`, /17 wildcards; the limit is 16/));
  });
});

describe('captures', () => {
  it('gives what each * of a Redis glob matched, in order', () => {
    const spec = parseBridgeSpec('redis:merchant:*:*');
    assert.deepEqual(captures(spec, 'merchant:42:progress'), ['42', 'progress']);
  });

  it('lets a Redis * match any characters, including ":" and nothing at all', () => {
    const spec = parseBridgeSpec('redis:a:*');
    assert.deepEqual(captures(spec, 'a:b:c'), ['b:c']);
    assert.deepEqual(captures(spec, 'a:'), ['']);
  });

  it('matches ?, classes, negated classes, ranges and escapes as Redis does', () => {
    const spec = parseBridgeSpec('redis:h?llo:[ab]:[^0-9]:[z-x]:\\*:*');
    assert.deepEqual(captures(spec, 'hello:a:x:y:*:rest'), ['rest']);
    assert.equal(captures(spec, 'hello:c:x:y:*:rest'), undefined);
    assert.equal(captures(spec, 'hello:a:5:y:*:rest'), undefined);
    assert.equal(captures(spec, 'hello:a:x:y:Q:rest'), undefined);
  });

  it('treats regular-expression characters in a Redis glob literally', () => {
    const spec = parseBridgeSpec('redis:a.b+(c)|{d}$:*');
    assert.deepEqual(captures(spec, 'a.b+(c)|{d}$:1'), ['1']);
    assert.equal(captures(spec, 'aXb+(c)|{d}$:1'), undefined);
  });

  it('gives each NATS * token, and the rest of the subject joined with "." for >', () => {
    const spec = parseBridgeSpec('nats:journey.*.step.>');
    assert.deepEqual(captures(spec, 'journey.u1.step.a.b.c'), ['u1', 'a.b.c']);
    assert.equal(captures(spec, 'journey.u1.step'), undefined, '> needs at least one token');
    assert.equal(captures(spec, 'journey.u1.other.a'), undefined);
    assert.deepEqual(captures(parseBridgeSpec('nats:a.*'), 'a.b'), ['b']);
    assert.equal(captures(parseBridgeSpec('nats:a.*'), 'a.b.c'), undefined);
  });
});

describe('mapMessage', () => {
  it('maps a seed 002 progress message: topic from the channel, tenant and type from the body', () => {
    const body = { type: 'progress', merchantId: 'm-42', poId: 'po1', progress: 50 };
    assert.deepEqual(mapMessage(parseBridgeSpec(SEED_002), 'merchant:m-42:progress', JSON.stringify(body)), {
      topic: 'merchants/m-42/progress',
      data: body,
      tenant: 'm-42',
      type: 'progress',
    });
  });

  it("maps seed 002's real messages, which name the merchant only in the channel", () => {
    // publishMerchantStage(merchantId, {type, stage, poId, ...}): the body has no merchantId.
    const spec = parseBridgeSpec('redis:merchant:*:* -> merchants/{1}/{2} tenant={1} type={2}');
    const body = { type: 'stage', stage: 'ai_parsing', poId: 'po-1', status: 'started', timestamp: 1 };
    assert.deepEqual(mapMessage(spec, 'merchant:m-42:stage', JSON.stringify(body)), {
      topic: 'merchants/m-42/stage',
      data: body,
      tenant: 'm-42',
      type: 'stage',
    });
    assert.throws(
      () => mapMessage(parseBridgeSpec(SEED_002), 'merchant:m-42:progress', JSON.stringify(body)),
      /no field "merchantId"/,
    );
  });

  it('lets a tenant template hold "/" (only topic segments may not), but not be empty', () => {
    const spec = parseBridgeSpec('redis:t:* tenant={1}');
    assert.equal(mapMessage(spec, 't:a/b', '').tenant, 'a/b');
    assert.throws(() => mapMessage(spec, 't:', ''), /wildcard \{1\} is empty$/);
  });

  it('maps a seed 003 metric: a field and a capture in the topic, a fixed type', () => {
    const body = { companyId: 'acme', metricName: 'integration_score', value: 0.85 };
    assert.deepEqual(mapMessage(parseBridgeSpec(SEED_003), 'metrics.calculated', JSON.stringify(body)), {
      topic: 'companies/acme/metrics/calculated',
      data: body,
      tenant: 'acme',
      type: 'metric_updated',
    });
  });

  it('takes the id from a field and turns numbers into text', () => {
    const spec = parseBridgeSpec('nats:a -> t/{n} tenant=org.id id=eventId');
    assert.deepEqual(mapMessage(spec, 'a', '{"n":7,"org":{"id":12},"eventId":"e-1"}'), {
      topic: 't/7',
      data: { n: 7, org: { id: 12 }, eventId: 'e-1' },
      tenant: '12',
      id: 'e-1',
    });
  });

  it('sets the key from a field, a fixed value or a template: one latest-value slot per order, metric or user', () => {
    const order = parseBridgeSpec(
      'redis:merchant:*:* -> purchase-orders/{poId} tenant={1} type={2} key=poId',
    );
    const body = { type: 'progress', poId: 'PO-1', progress: 60 };
    assert.deepEqual(mapMessage(order, 'merchant:acme:progress', JSON.stringify(body)), {
      topic: 'purchase-orders/PO-1',
      data: body,
      tenant: 'acme',
      type: 'progress',
      key: 'PO-1',
    });
    const metric = parseBridgeSpec("nats:metrics.*.* -> companies/{1}/metrics/{2} tenant={1} key='value'");
    assert.equal(mapMessage(metric, 'metrics.acme.score', '0.85').key, 'value');
    const flag = parseBridgeSpec('nats:journey.*.* -> companies/{1}/journey/{2} key={2}:{userId}');
    assert.equal(mapMessage(flag, 'journey.acme.flag_updated', '{"userId":7}').key, 'flag_updated:7');
    assert.throws(
      () => mapMessage(flag, 'journey.acme.flag_updated', '{"userId":""}'),
      /field "userId" is empty/,
    );
    assert.throws(
      () => mapMessage(order, 'merchant:acme:progress', '{"poId":{}}'),
      /field "poId" is an object/,
    );
  });

  it('carries a body that is not JSON as text when the mapping reads no field', () => {
    const spec = parseBridgeSpec("redis:logs:* -> logs/{1} tenant='ops' type='line'");
    assert.deepEqual(mapMessage(spec, 'logs:web', 'GET / 200'), {
      topic: 'logs/web',
      data: 'GET / 200',
      tenant: 'ops',
      type: 'line',
    });
  });

  it('carries any JSON value as parsed data', () => {
    const spec = parseBridgeSpec('nats:n');
    assert.equal(mapMessage(spec, 'n', '42').data, 42);
    assert.deepEqual(mapMessage(spec, 'n', '[1,2]').data, [1, 2]);
    assert.equal(mapMessage(spec, 'n', '').data, '');
  });

  describe('throws a clear error', () => {
    it('when a field is missing', () =>
      mapFails(
        SEED_002,
        'merchant:1:progress',
        '{"type":"progress"}',
        /the message has no field "merchantId"/,
      ));
    it('when a nested field is missing', () =>
      mapFails('nats:a tenant=org.id', 'a', '{"org":"x"}', /no field "org\.id"/));
    it('when a field is an object', () =>
      mapFails(
        'nats:a tenant=t',
        'a',
        '{"t":{}}',
        /field "t" is an object; it must be a string or a number/,
      ));
    it('when a field is null', () => mapFails('nats:a tenant=t', 'a', '{"t":null}', /field "t" is null/));
    it('when a field is a boolean', () =>
      mapFails('nats:a type=t', 'a', '{"t":true}', /field "t" is a boolean/));
    it('when a field is an array', () => mapFails('nats:a id=t', 'a', '{"t":[1]}', /field "t" is an array/));
    it('when a field is empty', () => mapFails('nats:a tenant=t', 'a', '{"t":""}', /field "t" is empty/));
    it('when the body is not JSON but fields are needed', () =>
      mapFails(SEED_003, 'metrics.x', 'not json at all', /the message is not JSON \("not json at all"\)/));
    it('when the body is JSON but not an object', () =>
      mapFails(SEED_003, 'metrics.x', '[1]', /the message is a JSON array, not an object/));
    it('when a field would resolve through the prototype', () =>
      mapFails('nats:a tenant=constructor', 'a', '{}', /no field "constructor"/));
    it('when a value put into the topic contains "/"', () =>
      mapFails(SEED_003, 'metrics.x', '{"companyId":"a/../b"}', /may not contain "\/"/));
    it('when a capture is empty', () =>
      mapFails('redis:a:*:b -> t/{1}', 'a::b', '', /wildcard \{1\} is empty/));
    it('when the channel does not match the pattern', () =>
      mapFails('redis:a:* -> t/{1}', 'b:1', '', /does not match "a:\*"/));
  });
});
