import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, hubOn } from '../helpers/backends.ts';
import type { TestHub } from '../helpers/server.ts';
import type { SseStream } from '../helpers/sse-client.ts';

interface Case {
  readonly name: string;
  readonly method?: string;
  readonly path?: string;
  readonly contentType?: string | null;
  readonly body?: string;
  readonly status: number;
  readonly code: string;
  readonly detail: RegExp;
  readonly headers?: Record<string, string>;
}

const json = (value: unknown) => JSON.stringify(value);

/** The history a new stream or poll asks to start with: the parameter, and the bound, named. */
const HISTORY_CASES: readonly Case[] = [
  ...['/v1/events', '/v1/events/poll'].flatMap((route) => [
    {
      name: `rewind over the limit on ${route}`,
      method: 'GET',
      path: `${route}?topic=a&rewind=1001`,
      status: 400,
      code: 'invalid-rewind',
      detail: /rewind is 1001; the limit is 1000/,
    },
    {
      name: `a rewind that is not a number on ${route}`,
      method: 'GET',
      path: `${route}?topic=a&rewind=-1`,
      status: 400,
      code: 'invalid-rewind',
      detail: /rewind must be a whole number from 0 to 1000/,
    },
    {
      name: `since=yesterday on ${route}`,
      method: 'GET',
      path: `${route}?topic=a&since=yesterday`,
      status: 400,
      code: 'invalid-since',
      detail: /since must be an ISO time with a zone .*epoch milliseconds or a duration/,
    },
    {
      name: `an ISO since without a zone on ${route}`,
      method: 'GET',
      path: `${route}?topic=a&since=2025-05-01T10:00:00`,
      status: 400,
      code: 'invalid-since',
      detail: /add Z or an offset/,
    },
    {
      name: `a since further back than the history on ${route}`,
      method: 'GET',
      path: `${route}?topic=a&since=3d`,
      status: 400,
      code: 'invalid-since',
      detail: /since reaches back 3 d; the limit is 24 h/,
    },
    {
      name: `a bare small number as since on ${route}`,
      method: 'GET',
      path: `${route}?topic=a&since=300`,
      status: 400,
      code: 'invalid-since',
      detail: /looks like a duration: add a unit \(300s\)/,
    },
    {
      name: `since given twice on ${route}`,
      method: 'GET',
      path: `${route}?topic=a&since=5m&since=6m`,
      status: 400,
      code: 'invalid-since',
      detail: /give since once/,
    },
    {
      name: `snapshot=oldest on ${route}`,
      method: 'GET',
      path: `${route}?topic=a&snapshot=oldest`,
      status: 400,
      code: 'invalid-snapshot',
      detail: /snapshot must be latest/,
    },
    {
      name: `snapshot=latest with rewind on ${route}`,
      method: 'GET',
      path: `${route}?topic=a&snapshot=latest&rewind=2`,
      status: 400,
      code: 'invalid-snapshot',
      detail: /cannot be combined with rewind or since/,
    },
  ]),
  {
    name: 'limit=0 on /v1/latest',
    method: 'GET',
    path: '/v1/latest?topic=a&limit=0',
    status: 400,
    code: 'invalid-limit',
    detail: /limit must be a whole number from 1 to 10000/,
  },
  {
    name: '/v1/latest without topic',
    method: 'GET',
    path: '/v1/latest',
    status: 400,
    code: 'topic-required',
    detail: /topic is required/,
  },
  {
    name: '/v1/latest of every tenant',
    method: 'GET',
    path: '/v1/latest?topic=a&tenant=*',
    status: 400,
    code: 'invalid-snapshot',
    detail: /a snapshot is per tenant/,
  },
];

const CASES: readonly Case[] = [
  {
    name: 'malformed JSON',
    body: '{"topic": "a", ',
    status: 400,
    code: 'malformed-json',
    detail: /not valid JSON/,
  },
  {
    name: 'a body that is not UTF-8',
    body: '\u00ff',
    status: 400,
    code: 'malformed-json',
    detail: /UTF-8|JSON/,
  },
  {
    name: 'a missing topic',
    body: json({ data: 1 }),
    status: 400,
    code: 'topic-required',
    detail: /topic is required/,
  },
  {
    name: 'an empty topic',
    body: json({ topic: '', data: 1 }),
    status: 400,
    code: 'topic-required',
    detail: /non-empty/,
  },
  {
    name: 'a CR/LF in the id',
    body: json({ topic: 'a', id: 'x\r\nevent: evil' }),
    status: 400,
    code: 'invalid-id',
    detail: /control character/,
  },
  {
    name: 'a NUL in the id',
    body: json({ topic: 'a', id: 'x\u0000' }),
    status: 400,
    code: 'invalid-id',
    detail: /control character/,
  },
  {
    name: 'a LF in the type',
    body: json({ topic: 'a', type: 'x\ndata: evil' }),
    status: 400,
    code: 'invalid-type',
    detail: /control character/,
  },
  {
    name: 'a LF in the topic',
    body: json({ topic: 'a\nb' }),
    status: 400,
    code: 'invalid-topic',
    detail: /control character/,
  },
  {
    name: 'a herald.* type',
    body: json({ topic: 'a', type: 'herald.connected' }),
    status: 400,
    code: 'reserved-type',
    detail: /reserved/,
  },
  {
    name: 'an unknown field',
    body: json({ topic: 'a', dta: 1 }),
    status: 400,
    code: 'unknown-field',
    detail: /"dta"/,
  },
  { name: 'an empty batch', body: '[]', status: 400, code: 'empty-batch', detail: /empty/ },
  {
    name: 'a bad event in a batch',
    body: json([{ topic: 'a' }, { topic: 'b', type: 'herald.x' }]),
    status: 400,
    code: 'reserved-type',
    detail: /^event 1: /,
  },
  {
    name: 'data over the size limit',
    body: json({ topic: 'a', data: 'x'.repeat(2 * 1024 * 1024 + 300 * 1024) }),
    status: 413,
    code: 'data-too-large',
    detail: /data is 2\.3 MiB; the limit is 2 MiB/,
  },
  {
    name: 'a body over the body limit',
    body: json({ topic: 'a', data: 'x'.repeat(5 * 1024 * 1024) }),
    status: 413,
    code: 'body-too-large',
    detail: /limit is 4 MiB/,
  },
  {
    name: 'a batch over the batch limit',
    body: json(Array.from({ length: 1001 }, () => ({ topic: 'a' }))),
    status: 413,
    code: 'batch-too-large',
    detail: /1001 events; the limit is 1000/,
  },
  {
    name: 'a form content type',
    contentType: 'application/x-www-form-urlencoded',
    body: 'topic=a',
    status: 415,
    code: 'unsupported-media-type',
    detail: /application\/json/,
  },
  {
    name: 'no content type',
    contentType: null,
    body: json({ topic: 'a' }),
    status: 415,
    code: 'unsupported-media-type',
    detail: /got none/,
  },
  {
    name: 'a wrong method on publish',
    method: 'GET',
    path: '/v1/publish',
    status: 405,
    code: 'method-not-allowed',
    detail: /GET is not allowed/,
    headers: { allow: 'POST' },
  },
  {
    name: 'a wrong method on events',
    method: 'DELETE',
    path: '/v1/events?topic=a',
    status: 405,
    code: 'method-not-allowed',
    detail: /use GET/,
    headers: { allow: 'GET' },
  },
  {
    name: 'an unknown route',
    method: 'GET',
    path: '/v2/nothing',
    status: 404,
    code: 'not-found',
    detail: /no route \/v2\/nothing/,
  },
  {
    name: 'a subscription without topic',
    method: 'GET',
    path: '/v1/events',
    status: 400,
    code: 'topic-required',
    detail: /topic is required/,
  },
  {
    name: 'a malformed URI template',
    method: 'GET',
    path: `/v1/events?topic=${encodeURIComponent('a/{b')}`,
    status: 400,
    code: 'invalid-template',
    detail: /\{/,
  },
  {
    name: 'too many topics',
    method: 'GET',
    path: `/v1/events?${Array.from({ length: 101 }, (_, i) => `topic=t${i}`).join('&')}`,
    status: 400,
    code: 'too-many-topics',
    detail: /101 topic selectors given; the limit is 100/,
  },
  {
    name: 'an empty tag name',
    method: 'GET',
    path: '/v1/events?topic=a&tag.=x',
    status: 400,
    code: 'invalid-tag',
    detail: /needs a name/,
  },
  ...HISTORY_CASES,
];

function send(
  url: string,
  c: Case,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    const contentType = c.contentType === undefined ? 'application/json' : c.contentType;
    if (contentType !== null && c.body !== undefined) headers['content-type'] = contentType;
    const req = request(
      `${url}${c.path ?? '/v1/publish'}`,
      { method: c.method ?? 'POST', headers, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (text: string) => {
          body += text;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    // The server may answer and close before reading an oversized body.
    req.on('error', (error: NodeJS.ErrnoException) =>
      error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error),
    );
    req.end(c.body === '\u00ff' ? Buffer.from([0xff, 0xfe]) : c.body);
  });
}

for (const backend of BACKENDS) {
  describe(`bad input (${backend.name})`, () => {
    let hub: TestHub;
    let bystander: SseStream;
    before(async () => {
      hub = await hubOn(backend, { maxDataBytes: 2 * 1024 * 1024 });
      bystander = await hub.subscribe('topic=bystander');
      await bystander.until((s) => s.events.length >= 1);
    });
    after(() => hub.close());

    for (const c of CASES) {
      test(`${c.name} gets ${c.status} problem+json and changes nothing`, async () => {
        const before = (await hub.herald.stats()).events.published;
        const streams = (await hub.herald.stats()).connections.total;
        const response = await send(hub.url, c);
        assert.equal(response.status, c.status, response.body);
        assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8');
        const problem = JSON.parse(response.body);
        assert.equal(problem.status, c.status);
        assert.equal(problem.code, c.code);
        assert.equal(typeof problem.title, 'string');
        assert.equal(problem.type, 'about:blank');
        assert.match(problem.detail, c.detail);
        for (const [name, value] of Object.entries(c.headers ?? {}))
          assert.equal(response.headers[name], value);
        assert.equal((await hub.herald.stats()).events.published, before, 'nothing was published');
        assert.equal((await hub.herald.stats()).connections.total, streams, 'no stream was opened');
      });
    }

    test('a malformed Last-Event-ID is treated as unknown: herald.gap, not a crash', async () => {
      const stream = await hub.subscribe('topic=bystander', { lastEventId: 'garbage\t%%% ÿ-../-1' });
      await stream.until((s) => s.events.some((e) => e.type === 'herald.gap'));
      stream.close();
    });

    test('after all of it the hub still serves the stream opened before', async () => {
      await hub.publish({ topic: 'bystander', data: 'still here' });
      await bystander.untilData(1);
      assert.equal(bystander.data[0]?.data, 'still here');
      assert.equal(bystander.ended, false);
    });
  });
}

for (const backend of BACKENDS) {
  describe(`a hub that keeps no latest values (${backend.name})`, () => {
    let hub: TestHub;
    before(async () => {
      hub = await hubOn(backend, { history: { latestMaxKeys: 0 } });
    });
    after(() => hub.close());

    for (const path of [
      '/v1/events?topic=a&snapshot=latest',
      '/v1/events/poll?topic=a&snapshot=latest',
      '/v1/latest?topic=a',
    ]) {
      test(`${path} gets 400 latest-disabled and opens nothing`, async () => {
        const response = await send(hub.url, {
          name: path,
          method: 'GET',
          path,
          status: 400,
          code: 'latest-disabled',
          detail: /./,
        });
        assert.equal(response.status, 400, response.body);
        assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8');
        const problem = JSON.parse(response.body);
        assert.equal(problem.code, 'latest-disabled');
        assert.match(problem.detail, /keeps no latest values \(latest-max-keys is 0/);
        assert.equal((await hub.herald.stats()).connections.total, 0);
      });
    }
  });
}
