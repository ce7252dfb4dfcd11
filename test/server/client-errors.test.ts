import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type HubProcess, spawnHub } from '../helpers/nodes.ts';

/**
 * Requests node:http refuses before Herald sees them (src/server/serve.ts `answerClientError`):
 * still problem+json, with the status that says what went wrong. Slow headers (issue 12, item 7)
 * are a timeout, 408, not a malformed request.
 */

/** Writes `chunks` on a raw connection, then reads until the hub closes it. */
function raw(url: string, chunks: readonly string[]): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      for (const chunk of chunks) socket.write(chunk);
    });
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      answer += text;
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(answer));
  });
}

function problemOf(answer: string): { status: number; code: string; detail: string } {
  assert.match(answer, /\r\ncontent-type: application\/problem\+json; charset=utf-8\r\n/i);
  return JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
}

describe('herald serve --headers-timeout', () => {
  let hub: HubProcess;
  before(async () => {
    hub = await spawnHub(['--headers-timeout', '1s']);
  });
  after(() => hub?.stop());

  test('headers that have not all arrived in time get 408 with problem+json, and the socket is closed', async () => {
    // A request line and one header, then nothing: a slow client, or one holding sockets on purpose.
    const answer = await raw(hub.url, ['GET /v1/events?topic=a HTTP/1.1\r\nHost: x\r\n']);
    assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    const problem = problemOf(answer);
    assert.equal(problem.status, 408);
    assert.equal(problem.code, 'request-timeout');
    assert.match(problem.detail, /headers did not all arrive within 1 s/);
    // Unlike a request that is not HTTP, which is still a 400.
    const garbage = await raw(hub.url, ['NOT HTTP AT ALL\r\n\r\n']);
    assert.match(garbage, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.equal(problemOf(garbage).code, 'bad-http');
  });

  test('every answer carries a request id: the server’s own 400/408/431, and a 404 for an unknown path', async () => {
    const answers = [
      await raw(hub.url, ['NOT HTTP AT ALL\r\n\r\n']),
      await raw(hub.url, ['GET /v1/events?topic=a HTTP/1.1\r\nHost: x\r\n']),
      await raw(hub.url, [`GET /v1/events?topic=${'a'.repeat(200 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`]),
    ];
    for (const answer of answers)
      assert.match(answer, /\r\nx-request-id: [0-9a-f-]{36}\r\n/i, answer.slice(0, 300));
    const unknown = await fetch(`${hub.url}/no/such/path`, { headers: { 'x-request-id': 'req-404' } });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.headers.get('x-request-id'), 'req-404');
    const fresh = await fetch(`${hub.url}/no/such/path`);
    assert.match(String(fresh.headers.get('x-request-id')), /^[0-9a-f-]{36}$/);
  });

  test('a headers timeout that is not a duration stops the start, naming the flag', async () => {
    await assert.rejects(
      spawnHub(['--headers-timeout', 'soon']),
      /--headers-timeout \(HERALD_HEADERS_TIMEOUT\): "soon" is not a duration/,
    );
  });
});
