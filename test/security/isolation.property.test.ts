import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { random } from '../helpers/random.ts';
import { sleep, startHub } from '../helpers/server.ts';
import type { SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

const TENANTS = ['', 'acme', 'globex'];
const TOPICS = ['rooms/0', 'rooms/1', 'rooms/2', 'news', 'alerts/fire', 'alerts/flood'];
const SELECTORS = [...TOPICS, 'rooms/{id}', 'alerts/{kind}', '*'];

/** The oracle: what each selector means, written out independently of the hub's matcher. */
function selects(selector: string, topic: string): boolean {
  if (selector === '*') return true;
  if (selector === 'rooms/{id}') return /^rooms\/[^/]+$/.test(topic);
  if (selector === 'alerts/{kind}') return /^alerts\/[^/]+$/.test(topic);
  return selector === topic;
}
const anySelects = (selectors: readonly string[], topics: readonly string[]) =>
  selectors.some((s) => topics.some((t) => selects(s, t)));

interface Subscriber {
  readonly tenant: string;
  readonly watchesAll: boolean;
  readonly selectors: string[];
  /** undefined: anonymous. */
  readonly grants: string[] | undefined;
  stream?: SseStream;
}

interface Published {
  readonly tenant: string;
  readonly topics: string[];
  readonly private: boolean;
  readonly data: string;
}

function shouldReceive(subscriber: Subscriber, event: Published): boolean {
  if (!subscriber.watchesAll && subscriber.tenant !== event.tenant) return false;
  if (!anySelects(subscriber.selectors, event.topics)) return false;
  if (!event.private || subscriber.watchesAll) return true;
  return subscriber.grants !== undefined && anySelects(subscriber.grants, event.topics);
}

describe('tenant isolation and private events, randomized', () => {
  for (const seed of [1, 2, 3]) {
    test(`no event crosses a tenant or reaches someone it is private from, and every due event arrives (seed ${seed})`, async () => {
      const rng = random(seed);
      const hub = await startHub({ auth: { jwt: { secrets: [SECRET] }, anonymous: true } });
      try {
        const subscribers: Subscriber[] = [];
        for (let i = 0; i < 36; i++) {
          const anonymous = rng.next() < 0.2;
          subscribers.push({
            tenant: anonymous ? '' : rng.pick(TENANTS),
            watchesAll: false,
            selectors: rng.some(SELECTORS, 3),
            grants: anonymous ? undefined : rng.next() < 0.3 ? [] : rng.some(SELECTORS, 2),
          });
        }
        subscribers.push({ tenant: '*', watchesAll: true, selectors: ['*'], grants: undefined });
        for (const subscriber of subscribers) {
          const query = subscriber.selectors.map((s) => `topic=${encodeURIComponent(s)}`).join('&');
          let headers: Record<string, string> = {};
          let extra = '';
          if (subscriber.watchesAll) {
            headers = bearer(await token({ admin: true }));
            extra = '&tenant=*';
          } else if (subscriber.grants !== undefined) {
            headers = bearer(await token({ tenant: subscriber.tenant, subscribe: subscriber.grants }));
          }
          subscriber.stream = await hub.subscribe(query + extra, { headers });
        }
        await Promise.all(subscribers.map((s) => s.stream?.until((x) => x.events.length >= 1)));

        const publishers = new Map<string, string>();
        for (const tenant of TENANTS)
          publishers.set(tenant, await token({ tenant, publish: ['*'], sub: `pub-${tenant}` }));
        const published: Published[] = [];
        for (let i = 0; i < 200; i++) {
          const event = {
            tenant: rng.pick(TENANTS),
            topics: rng.some(TOPICS, 2),
            private: rng.next() < 0.4,
            data: `event-${i}`,
          };
          const answer = await hub.publish(
            { topic: event.topics, private: event.private, data: event.data },
            bearer(publishers.get(event.tenant) as string),
          );
          assert.equal(answer.status, 202, JSON.stringify(answer.body));
          published.push(event);
        }
        // Let anything that should not arrive have every chance to.
        await sleep(100);

        for (const [index, subscriber] of subscribers.entries()) {
          const expected = published.filter((event) => shouldReceive(subscriber, event)).map((e) => e.data);
          const stream = subscriber.stream as SseStream;
          await stream.untilData(expected.length, 10_000).catch(() => {});
          assert.deepEqual(
            stream.data.map((e) => e.data),
            expected,
            `subscriber ${index} (${JSON.stringify({ ...subscriber, stream: undefined })})`,
          );
        }
        const delivered = subscribers.reduce((sum, s) => sum + (s.stream?.data.length ?? 0), 0);
        assert.ok(delivered > 500, `a meaningful test: ${delivered} deliveries`);
      } finally {
        await hub.close();
      }
    });
  }
});
