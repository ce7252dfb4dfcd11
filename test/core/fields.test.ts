import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeEvent, encodeDraft } from '../../src/backends/codec.ts';
import { mapMessage } from '../../src/bridges/map.ts';
import { parseBridgeSpec } from '../../src/bridges/spec.ts';
import { HeraldError } from '../../src/core/errors.ts';
import { type EventDraft, type PublishInput, validateEvent } from '../../src/core/event.ts';
import {
  EVENT_FIELDS,
  type EventField,
  type EventFieldName,
  pollEvent,
  toEvent,
  toRecord,
} from '../../src/core/protocol/fields.ts';
import { frameText } from '../../src/core/sse.ts';
import type { HttpContext } from '../../src/http/context.ts';
import type { HttpRequest } from '../../src/http/request.ts';
import type { MercureAuth } from '../../src/mercure/auth.ts';
import { publish as mercurePublish } from '../../src/mercure/publish.ts';
import { publishBody } from '../../src/server/publish-command.ts';

/**
 * `EVENT_FIELDS` says once what each field of an event is called and where it goes; the functions
 * that do it are written out by hand for speed. These tests hold the two together: each column of
 * the table against the code it describes, in both directions.
 */

const ROWS = Object.entries(EVENT_FIELDS) as [EventFieldName, EventField][];
/** The event names whose row has `column`, with the column's value. */
const column = <K extends keyof EventField>(name: K) =>
  new Map(ROWS.flatMap(([field, row]) => (row[name] === undefined ? [] : [[field, row[name]] as const])));
const sorted = (values: Iterable<unknown>) => [...values].map(String).sort();

/** A draft with every field set, none to its default. */
const FULL: EventDraft = {
  topics: ['orders/1', 'orders'],
  type: 'order.placed',
  data: '{"n":1,"secret":"x"}',
  tenant: 'acme',
  private: true,
  tags: { store: 'S1' },
  key: 'order-1',
  priority: 'high',
  retry: 1500,
  id: 'urn:order:1',
  reuseId: true,
  redact: { '/secret': 'pii:read' },
  time: 1234,
};
const MINIMAL: EventDraft = { topics: ['a'], data: '', tenant: '', priority: 'normal', time: 1 };

/** What a broker reads back: every field of the draft but the append's own instructions. */
const { reuseId: _, ...STORED } = FULL;

describe('event fields: the table and the code', () => {
  test('the event has every field of the table, and the same fields in the same order whatever is set', () => {
    const caches = ['frame', 'variants'];
    assert.deepEqual(
      sorted(Object.keys(toEvent(FULL, '9-0'))),
      sorted([...ROWS.filter(([field]) => field !== 'reuseId').map(([field]) => field), ...caches]),
    );
    assert.deepEqual(Object.keys(toEvent(MINIMAL, '9-0')), Object.keys(toEvent(FULL, '9-0')));
  });

  test('every field in a record is read back as it was written, under the key the table gives it', () => {
    const record = toRecord(FULL);
    const keys = column('record');
    assert.deepEqual(sorted(Object.keys(record)), sorted(keys.values()), 'one key per row with a record');
    assert.equal(new Set(keys.values()).size, keys.size, 'no two fields share a key');
    for (const [field, key] of keys) {
      if (field === 'priority') assert.equal(record.h, true);
      else if (field === 'id') assert.equal(record.i, FULL.id);
      else assert.deepEqual(record[key], (FULL as unknown as Record<string, unknown>)[field], field);
    }
    assert.deepEqual(decodeEvent(encodeDraft(FULL), '9-0'), toEvent(STORED, '9-0'));
    assert.deepEqual(decodeEvent(encodeDraft(MINIMAL), '9-0'), toEvent(MINIMAL, '9-0'));
    assert.equal(decodeEvent(encodeDraft(MINIMAL), '9-0').id, '9-0', 'without a chosen id, the position');
  });

  test('the poll JSON carries the fields of the poll column', () => {
    const event = toEvent(FULL, '9-0');
    const polled = pollEvent(event, 'visible');
    assert.deepEqual(sorted(Object.keys(polled)), sorted(column('poll').values()));
    assert.deepEqual(polled, { id: FULL.id, type: FULL.type, data: 'visible', retry: FULL.retry });
    assert.deepEqual(pollEvent(toEvent(MINIMAL, '9-0'), ''), { id: '9-0', type: 'message', data: '' });
  });

  test('the SSE frame carries the fields of the sse column', () => {
    const names = frameText(toEvent(FULL, '9-0'))
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => line.slice(0, line.indexOf(':')));
    assert.deepEqual(sorted(new Set(names)), sorted(column('sse').values()));
  });
});

describe('event fields: publishing', () => {
  const input = column('input');
  /** One valid value per publish field, none its default. */
  const VALID: Required<PublishInput> = {
    topic: ['orders/1', 'orders'],
    data: { n: 1, secret: 'x' },
    type: 'order.placed',
    id: 'urn:order:1',
    tags: { store: 'S1' },
    private: true,
    key: 'order-1',
    priority: 'high',
    retry: 1500,
    tenant: 'acme',
    redact: { '/secret': 'pii:read' },
  };
  /** One value per publish field that a publish is refused for. */
  const INVALID: Record<keyof PublishInput, unknown> = {
    topic: [],
    data: 1n,
    type: '',
    id: '',
    tags: ['x'],
    private: 'yes',
    key: '',
    priority: 'urgent',
    retry: -1,
    tenant: 5,
    redact: [],
  };

  test('a publish may give the fields of the input column, and is told so when it gives another', () => {
    assert.throws(
      () => validateEvent({ topic: 'a', tpoic: 'a' }, '', { maxDataBytes: 1024 }, 1),
      (error: HeraldError) => {
        assert.equal(error.code, 'unknown-field');
        assert.ok(
          error.detail.endsWith(`an event may have ${[...input.values()].map((f) => `"${f}"`).join(', ')}`),
          error.detail,
        );
        return true;
      },
    );
  });

  test('validation carries every field of a publish to the draft', () => {
    assert.deepEqual(sorted(Object.keys(VALID)), sorted(input.values()));
    const draft = validateEvent(VALID, '', { maxDataBytes: 1024 }, 1);
    for (const field of input.keys()) {
      assert.notEqual((draft as unknown as Record<string, unknown>)[field], undefined, field);
    }
  });

  test("validation refuses a bad value of each field with the row's code", () => {
    assert.deepEqual(sorted(Object.keys(INVALID)), sorted(input.values()));
    for (const [field, name] of input) {
      const code = EVENT_FIELDS[field as keyof typeof EVENT_FIELDS];
      assert.ok('invalid' in code, `${field} has a code`);
      assert.throws(
        () => validateEvent({ topic: 'a', [name]: INVALID[name] }, '', { maxDataBytes: 1024 }, 1),
        (error: unknown) => error instanceof HeraldError && error.code === code.invalid,
        name,
      );
    }
  });

  test('herald publish sets the fields of the cli column', () => {
    const body = publishBody({
      url: 'http://127.0.0.1:1',
      topic: ['orders/1', 'orders'],
      data: '{"n":1}',
      type: 'order.placed',
      id: 'urn:order:1',
      key: 'order-1',
      priority: 'high',
      tag: ['store=S1'],
      private: true,
    });
    assert.deepEqual(sorted(Object.keys(body)), sorted([...column('cli').keys()].map((f) => input.get(f))));
    assert.deepEqual(body.tags, { store: 'S1' });
    assert.deepEqual(body.data, { n: 1 });
  });

  test('a bridge sets the fields of the bridge column', () => {
    const spec = parseBridgeSpec(
      "redis:orders:* -> orders/{1} tenant='acme' type='order.placed' id=meta.id key='order:{1}'",
    );
    const mapped = mapMessage(spec, 'orders:1', '{"meta":{"id":"urn:order:1"}}');
    assert.deepEqual(
      sorted(Object.keys(mapped)),
      sorted([...column('bridge').keys()].map((f) => input.get(f))),
    );
  });

  test("Mercure's publish form sets the fields of the mercure column", async () => {
    const published: PublishInput[] = [];
    const principal = {};
    const auth = { authenticate: async () => ({ principal }) } as unknown as MercureAuth;
    const context = {
      settings: { maxBodyBytes: 1 << 20 },
      limits: { reservePublish: () => undefined },
      hub: {
        async publish(inputs: PublishInput[]) {
          published.push(...inputs);
          return [{ id: 'x' }];
        },
      },
    } as unknown as HttpContext;
    const form = new URLSearchParams({
      topic: 'a',
      data: 'd',
      id: 'urn:x',
      type: 't',
      retry: '5',
      private: 'on',
    });
    const request = {
      method: 'POST',
      path: '/.well-known/mercure',
      query: new URLSearchParams(),
      remoteAddress: undefined,
      header: (name: string) => (name === 'content-type' ? 'application/x-www-form-urlencoded' : undefined),
      body: async () => new TextEncoder().encode(form.toString()),
    } satisfies HttpRequest;
    await mercurePublish(auth, context, request);
    assert.deepEqual(
      sorted(Object.keys(published[0] as PublishInput)),
      sorted([...column('mercure').keys()].map((f) => input.get(f))),
    );
  });
});
