import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { encodeFrame, encodeRetry, encodeSystemEvent, frameText, HEARTBEAT } from '../../src/core/sse.ts';

/** Parses frames with an independent implementation of the WHATWG parser. */
function parse(
  bytes: Uint8Array,
  chunkSize = bytes.length,
): { events: EventSourceMessage[]; retry?: number; comments: string[] } {
  const events: EventSourceMessage[] = [];
  const comments: string[] = [];
  let retry: number | undefined;
  const parser = createParser({
    onEvent: (event) => events.push(event),
    onRetry: (ms) => {
      retry = ms;
    },
    onComment: (comment) => comments.push(comment),
  });
  const decoder = new TextDecoder();
  for (let i = 0; i < bytes.length; i += chunkSize) {
    parser.feed(decoder.decode(bytes.subarray(i, i + chunkSize), { stream: true }));
  }
  return { events, retry, comments };
}

describe('SSE encoding', () => {
  test('sends id always, event only when typed, then the data', () => {
    assert.equal(frameText({ id: '1', data: 'x' }), 'id: 1\ndata: x\n\n');
    assert.equal(
      frameText({ id: '2', type: 'ai-score', data: '{"a":1}' }),
      'id: 2\nevent: ai-score\ndata: {"a":1}\n\n',
    );
    assert.equal(frameText({ id: '3', data: 'x', retry: 500 }), 'id: 3\nretry: 500\ndata: x\n\n');
  });

  test('splits data on CRLF, CR and LF alike, one data line each', () => {
    assert.equal(
      frameText({ id: '1', data: 'a\r\nb\rc\nd' }),
      'id: 1\ndata: a\ndata: b\ndata: c\ndata: d\n\n',
    );
  });

  test('a CR in the data cannot inject a field', () => {
    const { events } = parse(encodeFrame({ id: '1', data: 'safe\rid: forged\revent: evil' }));
    assert.equal(events.length, 1);
    assert.equal(events[0]?.id, '1');
    assert.equal(events[0]?.event, undefined);
    assert.equal(events[0]?.data, 'safe\nid: forged\nevent: evil');
  });

  test('multi-line, blank-line and non-ASCII data round-trip exactly, however the bytes are chunked', () => {
    const data = 'line one\n\n  indented: yes\ndata: not a field\nZürich 東京 🎉\n';
    const bytes = encodeFrame({ id: 'e-1', type: 't', data });
    for (const chunkSize of [1, 2, 3, 7, bytes.length]) {
      const { events } = parse(bytes, chunkSize);
      assert.deepEqual(
        events.map((e) => [e.id, e.event, e.data]),
        [['e-1', 't', data]],
        `chunk size ${chunkSize}`,
      );
    }
  });

  test('empty data is an event with empty data', () => {
    const { events } = parse(encodeFrame({ id: '1', data: '' }));
    assert.equal(events[0]?.data, '');
  });

  test('system events carry an id only when given one', () => {
    assert.doesNotMatch(
      new TextDecoder().decode(encodeSystemEvent('herald.gap', { reason: 'unknown' })),
      /^id:/m,
    );
    const { events } = parse(encodeSystemEvent('herald.connected', { lastEventId: 'x-1' }, 'x-1'));
    assert.equal(events[0]?.id, 'x-1');
    assert.deepEqual(JSON.parse(events[0]?.data ?? ''), { lastEventId: 'x-1' });
  });

  test('retry and heartbeat dispatch no event', () => {
    const { events, retry, comments } = parse(new Uint8Array([...encodeRetry(1500), ...HEARTBEAT]));
    assert.equal(events.length, 0);
    assert.equal(retry, 1500);
    assert.deepEqual(
      comments.map((c) => c.trim()),
      ['hb'],
    );
  });
});
