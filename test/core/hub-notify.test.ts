import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { MemoryBroker } from '../../src/backends/memory/broker.ts';
import { Hub } from '../../src/core/hub.ts';
import { OPEN_PRINCIPAL } from '../../src/core/principal.ts';
import type { Sink } from '../../src/core/subscriber.ts';
import { parseSelector } from '../../src/core/topics.ts';

/** A sink that parses what it is given and can play a full socket. */
class RecordingSink implements Sink {
  readonly events: EventSourceMessage[] = [];
  full = false;
  private readonly parser = createParser({ onEvent: (event) => this.events.push(event) });
  private readonly decoder = new TextDecoder();

  write(chunks: readonly Uint8Array[]): boolean {
    for (const chunk of chunks) this.parser.feed(this.decoder.decode(chunk, { stream: true }));
    return !this.full;
  }
  end(): void {}
  destroy(): void {}
  notices(): EventSourceMessage[] {
    return this.events.filter((event) => event.event === 'herald.note');
  }
}

const settle = async () => {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
};

function open(hub: Hub, tenant: string, topics: string[]) {
  const sink = new RecordingSink();
  const subscriber = hub.subscribe(
    { tenant, selectors: topics.map(parseSelector), grants: OPEN_PRINCIPAL.subscribe },
    sink,
  );
  return { sink, subscriber };
}

describe('hub.notify: notices outside the log', () => {
  test('reach the streams of that tenant that selected the topic exactly, and no others', async () => {
    const hub = new Hub(new MemoryBroker());
    const exact = open(hub, '*', ['sys/figures']);
    const alsoAll = open(hub, '*', ['sys/figures', '*']);
    const all = open(hub, '*', ['*']);
    const template = open(hub, '*', ['sys/{name}']);
    const otherTenant = open(hub, '', ['sys/figures']);
    await settle();
    assert.equal(hub.watchers('*', 'sys/figures'), 2);
    assert.equal(hub.watchers('', 'sys/figures'), 1);
    assert.equal(hub.watchers('acme', 'sys/figures'), 0);

    assert.equal(hub.notify('*', 'sys/figures', 'herald.note', { n: 1 }), 2);
    assert.deepEqual(
      exact.sink.notices().map((event) => [event.id, event.data]),
      [[undefined, '{"n":1}']],
    );
    assert.equal(alsoAll.sink.notices().length, 1, 'one notice, whatever else the stream selected');
    for (const other of [all, template, otherTenant]) assert.equal(other.sink.notices().length, 0);
    // Not a delivery, not an event of the log.
    const stats = await hub.stats();
    assert.equal(stats.events.delivered, 0);
    assert.equal(stats.history?.size, 0);
    await hub.close();
  });

  test('skip a stream whose socket is full and one that has not finished its replay', async () => {
    // A real memory broker whose reads wait for the test: a replay can be held half way.
    const broker = new MemoryBroker();
    const read = broker.read.bind(broker);
    let release = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    broker.read = async (...args) => {
      await gate;
      return read(...args);
    };
    const hub = new Hub(broker);
    const [event] = await hub.publish([{ topic: 'sys/figures', data: 'logged' }], OPEN_PRINCIPAL);
    const full = open(hub, '', ['sys/figures']);
    await settle();
    full.sink.full = true;
    assert.equal(hub.notify('', 'sys/figures', 'herald.note', 1), 1); // this write finds the socket full
    assert.equal(hub.notify('', 'sys/figures', 'herald.note', 2), 0);
    assert.deepEqual(
      full.sink.notices().map((notice) => notice.data),
      ['1'],
    );
    full.sink.full = false;
    full.subscriber.drained();

    // Indexed, its replay from the log under way: a notice now would jump ahead of the history.
    const replaying = open(hub, '', ['sys/figures']);
    const resuming = hub.subscribe(
      {
        tenant: '',
        selectors: [parseSelector('sys/figures')],
        grants: OPEN_PRINCIPAL.subscribe,
        lastEventId: event?.id,
      },
      replaying.sink,
    );
    replaying.subscriber.closed();
    await settle();
    assert.equal(resuming.state, 'replaying');
    assert.equal(hub.watchers('', 'sys/figures'), 2);
    assert.equal(hub.notify('', 'sys/figures', 'herald.note', 3), 1, 'only the live stream');
    release();
    await settle();
    assert.equal(resuming.state, 'live');
    assert.equal(hub.notify('', 'sys/figures', 'herald.note', 4), 2);
    assert.deepEqual(
      replaying.sink.notices().map((notice) => notice.data),
      ['4'],
    );
    await hub.close();
  });
});
