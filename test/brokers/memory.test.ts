import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryBroker } from '../../src/backends/memory/broker.ts';
import { HeraldError } from '../../src/core/errors.ts';
import type { EventDraft, HeraldEvent } from '../../src/core/event.ts';

const draft = (data: string, extra: Partial<EventDraft> = {}): EventDraft => ({
  topics: ['t'],
  data,
  tenant: '',
  priority: 'normal',
  time: Date.now(),
  ...extra,
});

async function started(options?: ConstructorParameters<typeof MemoryBroker>[0]) {
  const broker = new MemoryBroker(options);
  const fed: HeraldEvent[] = [];
  const head = await broker.start((events) => fed.push(...events));
  return { broker, fed, head };
}

const ids = (events: readonly HeraldEvent[]) => events.map((event) => event.id);

describe('memory broker', () => {
  test('ids are <epoch>-<seq>, in order, and every append is fed once', async () => {
    const { broker, fed, head } = await started();
    assert.match(head, /^[0-9a-z]+-0$/);
    const epoch = head.split('-')[0];
    const events = await broker.append([draft('a'), draft('b')]);
    assert.deepEqual(ids(events), [`${epoch}-1`, `${epoch}-2`]);
    assert.deepEqual(ids(fed), ids(events));
    await broker.close();
  });

  test('read returns what follows a position, up to until and limit', async () => {
    const { broker, head } = await started();
    const events = await broker.append(['1', '2', '3', '4', '5'].map((d) => draft(d)));
    const last = events[4] as HeraldEvent;
    assert.deepEqual(ids(await broker.read(head, last.pos, 10)), ids(events));
    assert.deepEqual(ids(await broker.read(events[1]?.pos ?? '', last.pos, 2)), ids(events.slice(2, 4)));
    assert.deepEqual(ids(await broker.read(head, events[2]?.pos ?? '', 10)), ids(events.slice(0, 3)));
    assert.deepEqual(ids(await broker.read(null, last.pos, 10)), ids(events));
    await broker.close();
  });

  test('history is bounded by count: older events expire', async () => {
    const { broker, head } = await started({ maxEvents: 3 });
    const events = await broker.append(['1', '2', '3', '4', '5'].map((d) => draft(d)));
    const last = events[4] as HeraldEvent;
    assert.deepEqual(ids(await broker.read(null, last.pos, 10)), ids(events.slice(2)));
    assert.equal((await broker.locate(head, '')).kind, 'expired');
    assert.equal((await broker.locate(events[0]?.id ?? '', '')).kind, 'expired');
    // Resuming after event 2 needs 3, 4, 5: all still there.
    assert.deepEqual(await broker.locate(events[1]?.id ?? '', ''), { kind: 'found', pos: events[1]?.pos });
    const stats = await broker.history();
    assert.equal(stats.size, 3);
    assert.equal(stats.oldestId, events[2]?.id);
    assert.equal(stats.newestId, last.id);
    await broker.close();
  });

  test('history is bounded by age', async () => {
    const { broker } = await started({ maxAgeMs: 1000 });
    const old = await broker.append([draft('old', { time: Date.now() - 5000 })]);
    const fresh = await broker.append([draft('fresh')]);
    assert.deepEqual(ids(await broker.read(null, fresh[0]?.pos ?? '', 10)), ids(fresh));
    assert.deepEqual(await broker.locate(old[0]?.id ?? '', ''), { kind: 'found', pos: old[0]?.pos });
    assert.equal((await broker.history()).size, 1);
    await broker.close();
  });

  test('locate: unknown for garbage, a future seq or a later epoch; expired for an earlier epoch', async () => {
    const { broker, head } = await started();
    await broker.append([draft('a')]);
    const epoch = Number(head.split('-')[0]);
    for (const id of ['', 'garbage', `${head.split('-')[0]}-99`, `${epoch + 1}-1`, 'x\u0000-1']) {
      assert.deepEqual(await broker.locate(id, ''), { kind: 'unknown' }, JSON.stringify(id));
    }
    assert.equal((await broker.locate(`${epoch - 1}-5`, '')).kind, 'expired');
    await broker.close();
  });

  test('a publisher-chosen id is what clients see, mapped to its position', async () => {
    const { broker } = await started();
    const [chosen, next] = await broker.append([draft('a', { id: 'urn:uuid:1' }), draft('b')]);
    assert.equal(chosen?.id, 'urn:uuid:1');
    assert.notEqual(chosen?.pos, chosen?.id);
    assert.deepEqual(await broker.locate('urn:uuid:1', ''), { kind: 'found', pos: chosen?.pos });
    assert.deepEqual(ids(await broker.read(chosen?.pos ?? '', next?.pos ?? '', 10)), [next?.id]);
    await broker.close();
  });

  test('a publisher-chosen id already in the history is a 409, and nothing is appended', async () => {
    const { broker, fed } = await started();
    await broker.append([draft('a', { id: 'dup' })]);
    await assert.rejects(
      broker.append([draft('b'), draft('c', { id: 'dup' })]),
      (error: unknown) => error instanceof HeraldError && error.status === 409 && /"dup"/.test(error.detail),
    );
    assert.equal(fed.length, 1);
    await assert.rejects(broker.append([draft('d', { id: 'x' }), draft('e', { id: 'x' })]), /already/);
    await broker.close();
  });

  test('a chosen id that expired can be used again', async () => {
    const { broker } = await started({ maxEvents: 1 });
    await broker.append([draft('a', { id: 'reuse' })]);
    await broker.append([draft('b')]);
    await broker.append([draft('c', { id: 'reuse' })]);
    await broker.close();
  });

  test('compare orders positions across epochs', async () => {
    const { broker } = await started();
    assert.ok(broker.compare('1700000000000-2', '1700000000000-10') < 0);
    assert.ok(broker.compare('1700000000001-1', '1700000000000-10') > 0);
    assert.equal(broker.compare('1700000000000-3', '1700000000000-3'), 0);
    await broker.close();
  });
});
