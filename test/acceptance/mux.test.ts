import assert from 'node:assert/strict';
import { type ClientRequest, type IncomingMessage, request } from 'node:http';
import { after, afterEach, before, describe, test } from 'node:test';
import type { PublishInput } from '../../src/core/event.ts';
import { BACKENDS, hubOn } from '../helpers/backends.ts';
import { sleep, type TestHub } from '../helpers/server.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

/**
 * One stream for many subscriptions (`GET /v1/events?mux=1` and `POST /v1/channels`), the hub
 * side of tab sharing, on real sockets over memory and Redis: every frame of a channel comes
 * labelled `channel: <id>`, each event to exactly the channels that match it, once; channels
 * close, resume, rewind and change on their own; refusals leave the mux as it was; an overflowing
 * channel is announced and the rest go on; the mux's end ends every channel.
 */

/** One SSE event as it came, with the `channel` field an EventSource ignores. */
interface Frame {
  readonly channel: string | undefined;
  readonly id: string | undefined;
  readonly event: string;
  readonly data: string;
  readonly retry: number | undefined;
}

/** A mux stream read by hand: its own parser, as the `channel:` field is Herald's. */
class MuxStream {
  readonly frames: Frame[] = [];
  raw = '';
  ended = false;
  status = 0;
  private pending = '';
  private readonly req: ClientRequest;
  private res: IncomingMessage | undefined;
  private waiters: (() => void)[] = [];

  constructor(url: string, headers: Record<string, string>) {
    this.req = request(url, { headers: { accept: 'text/event-stream', ...headers }, agent: false });
  }

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.req.on('response', (res) => {
        this.res = res;
        this.status = res.statusCode ?? 0;
        res.setEncoding('utf8');
        res.on('data', (text: string) => this.feed(text));
        res.on('close', () => {
          this.ended = true;
          this.wake();
        });
        resolve();
      });
      this.req.on('error', (error) => {
        this.ended = true;
        reject(error);
      });
      this.req.end();
    });
  }

  /** The mux's own `herald.connected`: the one without a channel. */
  get own(): { connectionId: string; secret: string; lastEventId: string } {
    const connected = this.frames.find((f) => f.channel === undefined && f.event === 'herald.connected');
    assert.ok(connected, `the mux's herald.connected:\n${this.raw.slice(0, 1000)}`);
    return JSON.parse(connected.data);
  }

  of(channel: string): Frame[] {
    return this.frames.filter((f) => f.channel === channel);
  }

  /** A channel's published events (not Herald's own), as their data. */
  data(channel: string): string[] {
    return this.of(channel)
      .filter((f) => !f.event.startsWith('herald.') && f.data !== '')
      .map((f) => f.data);
  }

  /** The channel's own connection, from its labelled `herald.connected`. */
  connected(channel: string): { connectionId: string; secret: string; lastEventId: string } {
    const connected = this.of(channel).findLast((f) => f.event === 'herald.connected');
    assert.ok(connected, `channel ${channel}'s herald.connected`);
    return JSON.parse(connected.data);
  }

  async until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got:\n${this.raw.slice(-3000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  pause(): void {
    this.res?.pause();
  }

  resume(): void {
    this.res?.resume();
  }

  close(): void {
    this.req.destroy();
  }

  private feed(text: string): void {
    this.raw += text;
    this.pending += text;
    for (let end = this.pending.indexOf('\n\n'); end !== -1; end = this.pending.indexOf('\n\n')) {
      const block = this.pending.slice(0, end);
      this.pending = this.pending.slice(end + 2);
      this.parse(block);
    }
    this.wake();
  }

  private parse(block: string): void {
    const fields: Record<string, string[]> = {};
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const name = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      const values = fields[name] ?? [];
      values.push(value);
      fields[name] = values;
    }
    if (Object.keys(fields).length === 0) return;
    this.frames.push({
      channel: fields.channel?.[0],
      id: fields.id?.[0],
      event: fields.event?.[0] ?? 'message',
      data: (fields.data ?? []).join('\n'),
      retry: fields.retry === undefined ? undefined : Number(fields.retry[0]),
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

const range = (prefix: string, from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`);

for (const backend of BACKENDS.filter((b) => b.name !== 'nats')) {
  describe(`one stream for many subscriptions (${backend.name})`, () => {
    let hub: TestHub;
    let alice: Record<string, string>;
    let bob: Record<string, string>;
    let admin: Record<string, string>;
    const streams: MuxStream[] = [];
    before(async () => {
      hub = await hubOn(backend, { auth: { jwt: { secrets: [SECRET] } }, replayPageSize: 8 });
      alice = bearer(await token({ tenant: 'acme', sub: 'alice', subscribe: ['orders/{id}'] }));
      bob = bearer(await token({ tenant: 'acme', sub: 'bob' }));
      admin = bearer(await token({ admin: true }));
    });
    afterEach(async () => {
      // A test that failed half-way leaves nothing open for the next.
      for (const stream of streams.splice(0)) stream.close();
      await waitForNoSubscribers();
    });
    after(() => hub.close());

    const publish = (events: readonly PublishInput[]) => hub.herald.publish(events);

    async function openMux(headers = alice, query = 'mux=1'): Promise<MuxStream> {
      const stream = new MuxStream(`${hub.url}/v1/events?${query}`, headers);
      streams.push(stream);
      await stream.open();
      assert.equal(stream.status, 200);
      await stream.until(
        () => stream.frames.some((f) => f.event === 'herald.connected'),
        "the mux's herald.connected",
      );
      return stream;
    }

    async function post(path: string, body: unknown, headers = alice): Promise<Answer> {
      const response = await fetch(`${hub.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    }

    /** Opens channel `channel` on `mux` and waits for its labelled `herald.connected`. */
    async function openChannel(
      mux: MuxStream,
      channel: string,
      fields: Record<string, unknown>,
      headers = alice,
    ): Promise<string> {
      const { connectionId, secret } = mux.own;
      const answer = await post(
        '/v1/channels',
        { connectionId, secret, action: 'open', channel, ...fields },
        headers,
      );
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal(answer.body.channel, channel);
      const own = answer.body.connectionId as string;
      await mux.until(
        () =>
          mux
            .of(channel)
            .some((f) => f.event === 'herald.connected' && JSON.parse(f.data).connectionId === own),
        `channel ${channel}'s herald.connected`,
      );
      return own;
    }

    const channels = (mux: MuxStream, body: Record<string, unknown>, headers = alice) =>
      post('/v1/channels', { connectionId: mux.own.connectionId, secret: mux.own.secret, ...body }, headers);

    const stats = async (headers = admin) =>
      (await (await fetch(`${hub.url}/v1/stats`, { headers })).json()) as {
        connections: { total: number; byTenant: Record<string, number> };
        mux: { streams: number; channels: number };
      };

    test('eight channels on one stream: each event labelled for exactly the channels that match it, once', async () => {
      const mux = await openMux();
      const own = mux.own;
      assert.equal(own.lastEventId, '');
      const connected = mux.frames.find((f) => f.event === 'herald.connected');
      assert.equal(connected?.id, undefined, "the mux's herald.connected has no id");
      assert.equal(connected?.channel, undefined);

      const specs: Record<string, Record<string, unknown>> = {
        exact1: { topics: 'm8/orders/1' },
        exact2: { topics: ['m8/orders/2'] },
        template: { topics: ['m8/orders/{id}'] },
        all: { topics: ['*'] },
        scores: { topics: ['m8/dealers/{d}/scores'], types: ['ai-score'] },
        tagged: { topics: ['m8/orders/{id}'], tags: { vin: 'A' } },
        two: { topics: ['m8/orders/1', 'm8/dealers/S1/scores'] },
        none: { topics: ['m8/nothing'] },
      };
      const ids = new Set<string>();
      for (const [channel, fields] of Object.entries(specs)) ids.add(await openChannel(mux, channel, fields));
      assert.equal(ids.size, 8, 'each channel is a connection of its own');
      assert.ok(!ids.has(own.connectionId));

      const events: PublishInput[] = [
        { topic: 'm8/orders/1', tenant: 'acme', data: 'o1' },
        { topic: 'm8/orders/2', tenant: 'acme', data: 'o2', tags: { vin: 'A' } },
        { topic: 'm8/orders/3', tenant: 'acme', data: 'o3', tags: { vin: 'B' } },
        { topic: 'm8/dealers/S1/scores', tenant: 'acme', type: 'ai-score', data: 's1' },
        { topic: 'm8/dealers/S2/scores', tenant: 'acme', type: 'other', data: 's2' },
        { topic: 'm8/orders/1', tenant: 'globex', data: 'elsewhere' },
        { topic: 'm8/misc', tenant: 'acme', data: 'misc' },
        { topic: ['m8/orders/1', 'm8/orders/2'], tenant: 'acme', data: 'both', tags: { vin: 'A' } },
      ];
      await publish(events);
      const expected: Record<string, string[]> = {
        exact1: ['o1', 'both'],
        exact2: ['o2', 'both'],
        template: ['o1', 'o2', 'o3', 'both'],
        all: ['o1', 'o2', 'o3', 's1', 's2', 'misc', 'both'],
        scores: ['s1'],
        tagged: ['o2', 'both'],
        two: ['o1', 's1', 'both'],
        none: [],
      };
      await mux.until(
        () => Object.entries(expected).every(([channel, data]) => mux.data(channel).length >= data.length),
        'every channel its events',
      );
      // A fence only `all` takes: once here, what came before has been written.
      await publish([{ topic: 'm8/fence', tenant: 'acme', data: 'fence' }]);
      await mux.until(() => mux.data('all').includes('fence'), 'the fence');
      await sleep(50);
      for (const [channel, data] of Object.entries(expected)) {
        assert.deepEqual(
          mux.data(channel),
          channel === 'all' ? [...data, 'fence'] : data,
          `channel ${channel}`,
        );
        for (const frame of mux.of(channel).filter((f) => !f.event.startsWith('herald.') && f.data !== '')) {
          assert.ok(frame.id, 'each event keeps its id');
        }
      }
      assert.deepEqual(
        mux.frames.filter((f) => f.channel === undefined).map((f) => f.retry ?? f.event),
        [1000, 'herald.connected'],
        'nothing on the mux comes unlabelled but its own retry: and herald.connected',
      );
      assert.ok(!mux.raw.includes('elsewhere'), "another tenant's event reaches no channel");

      const figures = await stats();
      assert.deepEqual(figures.mux, { streams: 1, channels: 8 });
      assert.equal(
        figures.connections.total,
        8,
        'each channel is a connection; the mux carrying them is not',
      );
      const tenantView = await stats(alice);
      assert.equal(tenantView.mux, undefined, "a tenant's view keeps to its connections");
      assert.equal(tenantView.connections.total, 8);
      mux.close();
      await waitForNoSubscribers();
    });

    async function waitForNoSubscribers(): Promise<void> {
      const deadline = Date.now() + 5000;
      for (;;) {
        const figures = await stats();
        if (figures.connections.total === 0 && figures.mux.streams === 0 && figures.mux.channels === 0)
          return;
        assert.ok(Date.now() < deadline, `subscribers left: ${JSON.stringify(figures)}`);
        await sleep(20);
      }
    }

    test('a closed channel stops, the others go on; reopened from its last id it misses nothing and repeats nothing; rewind=3', async () => {
      const mux = await openMux();
      await openChannel(mux, 'a', { topics: ['cr/a'] });
      await openChannel(mux, 'b', { topics: ['cr/b'] });
      const round = (from: number, to: number) =>
        publish(
          range('', from, to).flatMap((n) => [
            { topic: 'cr/a', tenant: 'acme', data: `a${n}` },
            { topic: 'cr/b', tenant: 'acme', data: `b${n}` },
          ]),
        );
      await round(1, 3);
      await mux.until(() => mux.data('a').length === 3 && mux.data('b').length === 3, 'round 1');
      const lastOfA = mux.of('a').findLast((f) => f.data === 'a3')?.id;
      assert.ok(lastOfA);

      const closed = await channels(mux, { action: 'close', channel: 'a' });
      assert.deepEqual(closed, { status: 200, body: { channel: 'a', closed: true } });
      const again = await channels(mux, { action: 'close', channel: 'a' });
      assert.deepEqual(
        again,
        { status: 200, body: { channel: 'a', closed: false } },
        'closing is idempotent',
      );
      const { connectionId, secret } = mux.own;
      const forged = await post('/v1/channels', {
        connectionId,
        secret: `${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`,
        action: 'close',
        channel: 'b',
      });
      assert.deepEqual(
        forged,
        { status: 200, body: { channel: 'b', closed: false } },
        'a wrong secret closes nothing',
      );

      await round(4, 6);
      await mux.until(() => mux.data('b').length === 6, 'round 2 on b');
      await sleep(50);
      assert.deepEqual(mux.data('a'), range('a', 1, 3), 'a closed channel gets nothing');

      await openChannel(mux, 'a', { topics: ['cr/a'], lastEventId: lastOfA });
      await round(7, 8);
      await mux.until(() => mux.data('a').length >= 8 && mux.data('b').length === 8, 'a resumed');
      await sleep(50);
      assert.deepEqual(mux.data('a'), range('a', 1, 8), 'resumed with no loss and no duplicate');
      assert.deepEqual(mux.data('b'), range('b', 1, 8));

      await openChannel(mux, 'h', { topics: ['cr/a'], rewind: 3 });
      await mux.until(() => mux.of('h').some((f) => f.event === 'herald.history'), 'h: herald.history');
      await publish([{ topic: 'cr/a', tenant: 'acme', data: 'a9' }]);
      await mux.until(() => mux.data('h').includes('a9'), 'h: live');
      assert.deepEqual(mux.data('h'), ['a6', 'a7', 'a8', 'a9']);
      const history = mux.of('h').find((f) => f.event === 'herald.history');
      assert.deepEqual(JSON.parse(history?.data ?? '{}'), { kind: 'rewind', events: 3, complete: true });
      assert.ok(history?.id, 'herald.history carries the resume point, labelled');
      await mux.until(() => mux.data('a').includes('a9'), 'a: live');
      mux.close();
      await waitForNoSubscribers();
    });

    test("a channel's topics, types and tags change with its own connectionId and secret", async () => {
      const mux = await openMux();
      await openChannel(mux, 'c', { topics: ['ch/one'] });
      const { connectionId, secret } = mux.connected('c');
      const wrong = await post('/v1/subscriptions', {
        connectionId,
        secret: mux.own.secret,
        action: 'set',
        topics: ['ch/two'],
      });
      assert.equal(wrong.status, 404, "the mux's secret is not the channel's");
      const changed = await post('/v1/subscriptions', {
        connectionId,
        secret,
        action: 'set',
        topics: ['ch/two'],
        types: ['t'],
      });
      assert.equal(changed.status, 200, JSON.stringify(changed.body));
      assert.deepEqual(changed.body.topics, ['ch/two']);
      await publish([
        { topic: 'ch/one', tenant: 'acme', type: 't', data: 'one' },
        { topic: 'ch/two', tenant: 'acme', type: 'u', data: 'two-u' },
        { topic: 'ch/two', tenant: 'acme', type: 't', data: 'two-t' },
      ]);
      await mux.until(() => mux.data('c').includes('two-t'), 'the changed channel');
      assert.deepEqual(mux.data('c'), ['two-t']);
      mux.close();
      await waitForNoSubscribers();
    });

    test('refusals: another credential, a wrong secret, a bad name, the 33rd channel, another tenant; the mux is unaffected', async () => {
      const mux = await openMux();
      await openChannel(mux, 'keep', { topics: ['adv/keep'] });
      const { connectionId, secret } = mux.own;
      const open = (body: Record<string, unknown>, headers = alice) =>
        post('/v1/channels', { connectionId, secret, action: 'open', ...body }, headers);
      const refusals: [what: string, answer: Promise<Answer>, status: number, code: string][] = [
        ["bob on alice's mux", open({ channel: 'x', topics: ['adv/x'] }, bob), 403, 'not-your-stream'],
        [
          'a wrong secret',
          post('/v1/channels', {
            connectionId,
            secret: `${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`,
            action: 'open',
            channel: 'x',
            topics: ['adv/x'],
          }),
          404,
          'connection-not-found',
        ],
        [
          'an unknown mux',
          post('/v1/channels', { connectionId: 'nope', secret, action: 'open', channel: 'x', topics: ['t'] }),
          404,
          'connection-not-found',
        ],
        ['../x', open({ channel: '../x', topics: ['adv/x'] }), 400, 'invalid-channel'],
        ['65 characters', open({ channel: 'c'.repeat(65), topics: ['adv/x'] }), 400, 'invalid-channel'],
        ['an empty name', open({ channel: '', topics: ['adv/x'] }), 400, 'invalid-channel'],
        ['no name', open({ topics: ['adv/x'] }), 400, 'invalid-channel'],
        ['no topics', open({ channel: 'x' }), 400, 'topic-required'],
        ['a bad rewind', open({ channel: 'x', topics: ['adv/x'], rewind: 5000 }), 400, 'invalid-rewind'],
        [
          'a herald. type',
          open({ channel: 'x', topics: ['adv/x'], types: ['herald.x'] }),
          400,
          'invalid-type',
        ],
        [
          'another tenant',
          open({ channel: 'x', topics: ['adv/x'], tenant: 'globex' }),
          403,
          'tenant-forbidden',
        ],
        [
          'no connectionId',
          post('/v1/channels', { secret, action: 'open', channel: 'x' }),
          400,
          'connection-required',
        ],
        [
          'no secret',
          post('/v1/channels', { connectionId, action: 'open', channel: 'x' }),
          400,
          'secret-required',
        ],
        [
          'a bad action',
          post('/v1/channels', { connectionId, secret, action: 'set', channel: 'x' }),
          400,
          'invalid-action',
        ],
      ];
      for (const [what, answer, status, code] of refusals) {
        const { status: got, body } = await answer;
        assert.equal(got, status, `${what}: ${JSON.stringify(body)}`);
        assert.equal(body.code, code, what);
      }
      assert.equal((await open({ channel: 'c'.repeat(64), topics: ['adv/x'] })).status, 200, '64 characters');
      assert.equal((await channels(mux, { action: 'close', channel: 'c'.repeat(64) })).status, 200);

      // Topics beyond the credential's grants open as a stream would: public events only.
      await openChannel(mux, 'beyond', { topics: ['secret/{x}'] });
      await openChannel(mux, 'granted', { topics: ['orders/{id}'] });
      await publish([
        { topic: 'secret/1', tenant: 'acme', private: true, data: 'hidden' },
        { topic: 'secret/2', tenant: 'acme', data: 'public' },
        { topic: 'orders/1', tenant: 'acme', private: true, data: 'granted' },
      ]);
      await mux.until(
        () => mux.data('beyond').includes('public') && mux.data('granted').includes('granted'),
        'grants',
      );
      assert.deepEqual(mux.data('beyond'), ['public']);

      // 32 channels at most: the 33rd is refused and the others keep receiving.
      for (let n = 3; n < 32; n++) {
        const answer = await open({ channel: `n${n}`, topics: [`adv/n${n}`] });
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
      }
      const refused = await open({ channel: 'n33', topics: ['adv/n33'] });
      assert.equal(refused.status, 400);
      assert.equal(refused.body.code, 'too-many-channels');
      const replaced = await open({ channel: 'n31', topics: ['adv/n31-again'] });
      assert.equal(replaced.status, 200, 'reopening an open channel replaces it, within the 32');
      assert.deepEqual((await stats()).mux, { streams: 1, channels: 32 });

      await publish([
        { topic: 'adv/keep', tenant: 'acme', data: 'kept' },
        { topic: 'adv/n3', tenant: 'acme', data: 'n3' },
        { topic: 'adv/n31', tenant: 'acme', data: 'old-n31' },
        { topic: 'adv/n31-again', tenant: 'acme', data: 'new-n31' },
      ]);
      await mux.until(
        () =>
          mux.data('keep').includes('kept') &&
          mux.data('n3').includes('n3') &&
          mux.data('n31').includes('new-n31'),
        'the channels after the refusals',
      );
      assert.deepEqual(mux.data('n31'), ['new-n31']);
      assert.ok(!mux.ended);
      mux.close();
      await waitForNoSubscribers();
    });

    test('a mux stream is refused what its channels take', async () => {
      for (const query of [
        'mux=1&topic=a',
        'mux=1&type=a',
        'mux=1&tag.d=S1',
        'mux=1&rewind=3',
        'mux=2',
        'mux=1&mux=1',
      ]) {
        const response = await fetch(`${hub.url}/v1/events?${query}`, { headers: alice });
        assert.equal(response.status, 400, query);
        assert.equal(((await response.json()) as { code: string }).code, 'invalid-channel', query);
      }
      const response = await fetch(`${hub.url}/v1/events?mux=1&tenant=globex`, { headers: alice });
      assert.equal(response.status, 403);
      await response.body?.cancel();
      // An ordinary stream's connection is no mux.
      const stream = await hub.subscribe('topic=plain', { headers: alice });
      await stream.untilConnected();
      const { connectionId, secret } = JSON.parse(stream.events[0]?.data ?? '{}');
      const answer = await post('/v1/channels', {
        connectionId,
        secret,
        action: 'open',
        channel: 'x',
        topics: ['t'],
      });
      assert.equal(answer.status, 404);
      stream.close();
      await waitForNoSubscribers();
    });

    test('the mux ending ends every channel', async () => {
      const mux = await openMux();
      for (const channel of ['e1', 'e2', 'e3'])
        await openChannel(mux, channel, { topics: [`end/${channel}`] });
      const figures = await stats();
      assert.equal(figures.connections.total, 3);
      assert.deepEqual(figures.mux, { streams: 1, channels: 3 });
      mux.close();
      await waitForNoSubscribers();
      const { connectionId, secret } = mux.own;
      const late = await post('/v1/channels', {
        connectionId,
        secret,
        action: 'open',
        channel: 'e4',
        topics: ['t'],
      });
      assert.equal(late.status, 404);
    });
  });

  describe(`a mux stream under pressure and limits (${backend.name})`, () => {
    let hub: TestHub;
    let alice: Record<string, string>;
    before(async () => {
      hub = await hubOn(backend, {
        auth: { jwt: { secrets: [SECRET] } },
        outbox: { maxEvents: 4, maxBytes: 256 * 1024, policy: 'disconnect' },
        limits: { streamsPerSubject: 4 },
      });
      alice = bearer(await token({ tenant: 'acme', sub: 'alice' }));
    });
    after(() => hub.close());

    async function openMux(): Promise<MuxStream> {
      const stream = new MuxStream(`${hub.url}/v1/events?mux=1`, alice);
      await stream.open();
      await stream.until(() => stream.frames.some((f) => f.event === 'herald.connected'), 'connected');
      return stream;
    }

    const open = async (mux: MuxStream, channel: string, topics: string[], extra = {}) => {
      const response = await fetch(`${hub.url}/v1/channels`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...alice },
        body: JSON.stringify({ ...mux.own, action: 'open', channel, topics, ...extra }),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };

    test('each channel counts as a stream for the limits', async () => {
      const mux = await openMux();
      try {
        for (const channel of ['l1', 'l2', 'l3'])
          assert.equal((await open(mux, channel, ['lim'])).status, 200);
        const refused = await open(mux, 'l4', ['lim']);
        assert.equal(refused.status, 429);
        assert.equal(refused.body.code, 'too-many-streams');
        assert.equal(
          (await open(mux, 'l3', ['lim'])).status,
          200,
          'a replaced channel gives its slot back first',
        );
      } finally {
        mux.close();
      }
      // Its channels end with the mux, so none left means the mux has ended.
      await waitFor(async () => (await hub.herald.stats()).connections.total === 0, 'the mux to end');
    });

    test('a full socket blocks every channel, and its drain wakes them all: everything arrives, in order, once', async () => {
      const roomy = await hubOn(backend, {
        auth: { jwt: { secrets: [SECRET] } },
        outbox: { maxEvents: 10_000, maxBytes: 64 * 1024 * 1024, policy: 'disconnect' },
      });
      const mux = new MuxStream(`${roomy.url}/v1/events?mux=1`, alice);
      try {
        await mux.open();
        await mux.until(() => mux.frames.some((f) => f.event === 'herald.connected'), 'connected');
        for (const channel of ['d1', 'd2']) {
          const response = await fetch(`${roomy.url}/v1/channels`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...alice },
            body: JSON.stringify({ ...mux.own, action: 'open', channel, topics: [channel] }),
          });
          assert.equal(response.status, 200);
        }
        await mux.until(() => mux.of('d2').some((f) => f.event === 'herald.connected'), 'd2 connected');
        mux.pause();
        const big = 'y'.repeat(64 * 1024);
        for (let batch = 0; batch < 20; batch++) {
          await roomy.herald.publish(
            Array.from({ length: 16 }, (_, i) => ({
              topic: i % 2 === 0 ? 'd1' : 'd2',
              tenant: 'acme',
              data: `${batch * 16 + i} ${big}`,
            })),
          );
          // A flush between batches: what the full socket refuses waits in the channels' outboxes.
          await sleep(5);
        }
        const queued = (await roomy.herald.stats()).outbox.queuedEvents;
        assert.ok(queued > 0, 'the channels were blocked and queued events');
        mux.resume();
        await mux.until(
          () => mux.data('d1').length === 160 && mux.data('d2').length === 160,
          'every event',
          30_000,
        );
        const numbers = (channel: string) => mux.data(channel).map((data) => Number(data.split(' ')[0]));
        assert.deepEqual(
          numbers('d1'),
          Array.from({ length: 160 }, (_, i) => i * 2),
        );
        assert.deepEqual(
          numbers('d2'),
          Array.from({ length: 160 }, (_, i) => i * 2 + 1),
        );
        assert.equal((await roomy.herald.stats()).events.closed.overflow, 0);
      } finally {
        mux.close();
        await roomy.close();
      }
    });

    test('a channel whose outbox overflows is announced; the mux and its other channels go on', async () => {
      const mux = await openMux();
      try {
        assert.equal((await open(mux, 'bulk', ['bulk'])).status, 200);
        assert.equal((await open(mux, 'quiet', ['quiet'])).status, 200);
        await mux.until(() => mux.of('quiet').some((f) => f.event === 'herald.connected'), 'quiet connected');
        mux.pause();
        const big = 'x'.repeat(64 * 1024);
        let batches = 0;
        while ((await hub.herald.stats()).events.closed.overflow === 0) {
          assert.ok(batches++ < 200, 'the bulk channel overflows');
          await hub.herald.publish(
            Array.from({ length: 16 }, () => ({ topic: 'bulk', tenant: 'acme', data: big })),
          );
          await sleep(5);
        }
        mux.resume();
        await mux.until(
          () => mux.of('bulk').some((f) => f.event === 'herald.channel-closed'),
          'herald.channel-closed',
          20_000,
        );
        const closed = mux.of('bulk').find((f) => f.event === 'herald.channel-closed');
        assert.deepEqual(JSON.parse(closed?.data ?? '{}'), { reason: 'overflow' });
        assert.equal(closed?.id, undefined);
        await hub.herald.publish([{ topic: 'quiet', tenant: 'acme', data: 'still here' }]);
        await mux.until(() => mux.data('quiet').includes('still here'), 'the quiet channel');
        assert.ok(!mux.ended, 'the mux stays open');
        // The client reopens the channel from its last id.
        const last = mux.of('bulk').findLast((f) => f.id !== undefined && f.event === 'message')?.id;
        const reopened = await open(mux, 'bulk', ['bulk'], last === undefined ? {} : { lastEventId: last });
        assert.equal(reopened.status, 200);
        await hub.herald.publish([{ topic: 'bulk', tenant: 'acme', data: 'after' }]);
        await mux.until(() => mux.data('bulk').includes('after'), 'the reopened channel', 20_000);
        const stats = await hub.herald.stats();
        assert.equal(stats.events.closed.overflow, 1, 'only the bulk channel was cut');
      } finally {
        mux.close();
      }
      await waitFor(async () => (await hub.herald.stats()).connections.total === 0, 'every channel to end');
    });
  });
}

async function waitFor(condition: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(20);
  }
}
