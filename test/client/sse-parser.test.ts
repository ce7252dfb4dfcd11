import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createParser as referenceParser } from 'eventsource-parser';
import { createParser, type SseEvent } from '../../src/client/sse-parser.ts';

const encoder = new TextEncoder();

interface Parsed {
  events: SseEvent[];
  retries: number[];
}

/** Feeds `chunks` to a fresh parser and returns what it dispatched. */
function parse(chunks: Uint8Array[]): Parsed {
  const events: SseEvent[] = [];
  const retries: number[] = [];
  const parser = createParser(
    (event) => events.push(event),
    (ms) => retries.push(ms),
  );
  for (const chunk of chunks) parser.feed(chunk);
  return { events, retries };
}

/** Every way of cutting `bytes` in two, plus one byte at a time: all must parse like the whole. */
function splits(bytes: Uint8Array): Uint8Array[][] {
  const ways: Uint8Array[][] = [[bytes]];
  for (let at = 0; at <= bytes.length; at++) ways.push([bytes.subarray(0, at), bytes.subarray(at)]);
  ways.push(Array.from(bytes, (_, i) => bytes.subarray(i, i + 1)));
  return ways;
}

const message = (data: string, type = 'message', id = ''): SseEvent => ({ id, type, data });

// Each fixture: the stream, and what §9.2.6 dispatches from it.
const FIXTURES: { name: string; stream: string | Uint8Array; events: SseEvent[]; retries?: number[] }[] = [
  { name: 'one event', stream: 'data: hello\n\n', events: [message('hello')] },
  {
    name: 'id, type and data lines joined by LF',
    stream: 'id: 7\nevent: score\ndata: line one\ndata: line two\n\n',
    events: [message('line one\nline two', 'score', '7')],
  },
  {
    name: 'CRLF line ends',
    stream: 'id: 1\r\nevent: a\r\ndata: x\r\ndata: y\r\n\r\ndata: z\r\n\r\n',
    events: [message('x\ny', 'a', '1'), message('z', 'message', '1')],
  },
  {
    name: 'CR line ends',
    stream: 'data: x\rdata: y\r\rdata: z\r\r',
    events: [message('x\ny'), message('z')],
  },
  {
    name: 'mixed line ends',
    stream: 'data: a\r\ndata: b\rdata: c\n\r\ndata: d\n\r',
    events: [message('a\nb\nc'), message('d')],
  },
  { name: 'a leading BOM is ignored', stream: '\uFEFFdata: x\n\n', events: [message('x')] },
  {
    name: 'only one BOM: a second one belongs to the field name',
    stream: '\uFEFF\uFEFFdata: x\n\ndata: y\n\n',
    events: [message('y')],
  },
  { name: 'a BOM later in the stream is data', stream: 'data: \uFEFFx\n\n', events: [message('\uFEFFx')] },
  {
    name: 'comments (heartbeats) are ignored, also between fields',
    stream: ': hb\n\ndata: a\n: comment\ndata: b\n\n:\n\n',
    events: [message('a\nb')],
  },
  {
    name: 'one space after the colon is removed, not two',
    stream: 'data:x\n\ndata:  y\n\n',
    events: [message('x'), message(' y')],
  },
  {
    name: 'a field without a colon has an empty value',
    stream: 'data\n\ndata\ndata\n\n',
    events: [message(''), message('\n')],
  },
  { name: 'an empty data line still dispatches', stream: 'data:\n\n', events: [message('')] },
  {
    name: 'an event without data is not dispatched',
    stream: 'event: x\n\ndata: y\n\n',
    events: [message('y')],
  },
  {
    name: 'the event type does not carry over',
    stream: 'event: a\ndata: 1\n\ndata: 2\n\n',
    events: [message('1', 'a'), message('2')],
  },
  {
    name: 'the last event id persists across events, and an empty id resets it',
    stream: 'id: 5\ndata: a\n\ndata: b\n\nid\ndata: c\n\n',
    events: [message('a', 'message', '5'), message('b', 'message', '5'), message('c')],
  },
  {
    name: 'an id with NULL is ignored',
    stream: 'id: 1\ndata: a\n\nid: 2\u00003\ndata: b\n\n',
    events: [message('a', 'message', '1'), message('b', 'message', '1')],
  },
  {
    name: 'unknown fields are ignored',
    stream: 'foo: bar\ndata: a\nDATA: b\nData: c\n\n',
    events: [message('a')],
  },
  {
    name: 'an unfinished event at the end is not dispatched',
    stream: 'data: a\n\ndata: b\n',
    events: [message('a')],
  },
  {
    name: 'retry: only ASCII digits',
    stream: 'retry: 1500\nretry: 15x\nretry: -1\nretry:\nretry: 2.5\nretry:0\n\n',
    events: [],
    retries: [1500, 0],
  },
  {
    name: 'multibyte characters (2, 3 and 4 bytes)',
    stream: 'data: héllo — 日本 🎉\nevent: ünï\n\n',
    events: [message('héllo — 日本 🎉', 'ünï')],
  },
  {
    name: 'invalid UTF-8 becomes U+FFFD',
    stream: new Uint8Array([...encoder.encode('data: a'), 0xff, ...encoder.encode('b\n\n')]),
    events: [message('a\uFFFDb')],
  },
  { name: 'a colon in the value is kept', stream: 'data: a: b:c\n\n', events: [message('a: b:c')] },
];

describe('SSE parser (WHATWG HTML §9.2.6)', () => {
  for (const fixture of FIXTURES) {
    test(`${fixture.name}, cut anywhere`, () => {
      const bytes = typeof fixture.stream === 'string' ? encoder.encode(fixture.stream) : fixture.stream;
      for (const chunks of splits(bytes)) {
        const parsed = parse(chunks);
        const where = chunks.map((c) => c.length).join('+');
        assert.deepEqual(parsed.events, fixture.events, `chunks ${where}`);
        assert.deepEqual(parsed.retries, fixture.retries ?? [], `retries, chunks ${where}`);
      }
    });
  }

  test('a CRLF split between chunks is one line break, not a blank line', () => {
    const parsed = parse([encoder.encode('data: a\r'), encoder.encode('\ndata: b\r\n\r\n')]);
    assert.deepEqual(parsed.events, [message('a\nb')]);
  });

  test('a CR at a chunk end followed by a chunk holding only part of a character', () => {
    const emoji = encoder.encode('🎉');
    const parsed = parse([
      encoder.encode('data: a\r'),
      emoji.subarray(0, 2),
      emoji.subarray(2),
      encoder.encode('\n\n'),
    ]);
    // The CR ended "data: a"; the next line is "🎉", a field without value (ignored); then a blank line.
    assert.deepEqual(parsed.events, [message('a')]);
  });

  test('a large event in many small chunks', () => {
    const data = 'x'.repeat(200_000);
    const bytes = encoder.encode(`data: ${data}\n\n`);
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < bytes.length; at += 7) chunks.push(bytes.subarray(at, at + 7));
    assert.deepEqual(parse(chunks).events, [message(data)]);
  });

  test('agrees with eventsource-parser on random streams', () => {
    // A small deterministic generator, so a failure can be replayed.
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const pieces = [
      'data: a',
      'data:b',
      'data',
      'event: t',
      'event:',
      'id: 9',
      ': c',
      'x: y',
      'retry: 10',
      'é',
      '🎉',
      '',
    ];
    const breaks = ['\n', '\r', '\r\n'];
    for (let round = 0; round < 300; round++) {
      let text = '';
      for (let i = 0; i < 20; i++) {
        text += pieces[Math.floor(random() * pieces.length)];
        text += breaks[Math.floor(random() * breaks.length)];
      }
      const expected: { type: string; data: string }[] = [];
      const reference = referenceParser({
        onEvent: (event) => expected.push({ type: event.event ?? 'message', data: event.data }),
      });
      reference.feed(text);
      const bytes = encoder.encode(text);
      const cut = Math.floor(random() * bytes.length);
      const ours = parse([bytes.subarray(0, cut), bytes.subarray(cut)]).events.map(({ type, data }) => ({
        type,
        data,
      }));
      assert.deepEqual(ours, expected, JSON.stringify(text));
    }
  });
});
