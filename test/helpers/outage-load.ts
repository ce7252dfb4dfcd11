import assert from 'node:assert/strict';
import { type HubProcess, spawnHub } from './nodes.ts';
import { openStream, type SseStream } from './sse-client.ts';

/**
 * A broker outage under load (issue 16, item 6): three `herald serve --on-broker-down local`
 * nodes on one broker, publishers posting one event per request to every node, subscribers on
 * every node across tenants and topics; the broker is SIGKILLed, publishing goes on, the broker
 * comes back, every node rejoins by itself. Then, per node: accepted, delivered, lost, duplicated.
 */

export interface OutageBroker {
  readonly url: string;
  kill(): Promise<void>;
  /** Starts it again, with the data it had. */
  restart(): Promise<void>;
}

export interface OutageFigures {
  readonly node: number;
  /** Events this node answered 202 to. */
  readonly accepted: number;
  /** Events its streams received, one per recipient. */
  readonly delivered: number;
  /** What its streams should have received, one per recipient. */
  readonly expected: number;
  readonly lost: number;
  readonly duplicated: number;
  /** Publishes refused (not 202) on this node. */
  readonly refused: number;
  /** Events that reached a stream out of their publisher's order. */
  readonly reordered: number;
}

const TENANTS = ['acme', 'globex'];
const TOPICS = ['orders', 'prices'];
const COMBOS = TENANTS.flatMap((tenant) => TOPICS.map((topic) => ({ tenant, topic })));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Publisher {
  readonly node: number;
  readonly name: string;
  readonly tenant: string;
  readonly topic: string;
  /** Sequence numbers this node accepted, in order. */
  readonly accepted: number[];
  refused: number;
  statuses: Map<number, number>;
}

export async function rideOutOutage(
  broker: OutageBroker,
  stream: string,
  options: { readonly outageMs?: number; readonly pauseMs?: number } = {},
): Promise<OutageFigures[]> {
  const outageMs = options.outageMs ?? 3_000;
  const pauseMs = options.pauseMs ?? 30;
  const args = [
    '--broker',
    broker.url,
    '--stream',
    stream,
    '--on-broker-down',
    'local',
    '--outage-probe',
    '500',
  ];
  const nodes: HubProcess[] = await Promise.all([spawnHub(args), spawnHub(args), spawnHub(args)]);
  const streams: { node: number; tenant: string; topic: string; sse: SseStream }[] = [];
  try {
    for (const [index, node] of nodes.entries()) {
      for (const { tenant, topic } of COMBOS) {
        const sse = await openStream(`${node.url}/v1/events?topic=${topic}&tenant=${tenant}`);
        assert.equal(sse.status, 200);
        streams.push({ node: index, tenant, topic, sse });
      }
    }
    await Promise.all(streams.map(({ sse }) => sse.until((s) => s.connectionId !== undefined, 30_000)));

    const publishers: Publisher[] = nodes.flatMap((_, node) =>
      COMBOS.map(({ tenant, topic }) => ({
        node,
        name: `n${node}-${tenant}-${topic}`,
        tenant,
        topic,
        accepted: [],
        refused: 0,
        statuses: new Map(),
      })),
    );
    let publishing = true;
    const loops = publishers.map(async (publisher) => {
      const url = `${(nodes[publisher.node] as HubProcess).url}/v1/publish`;
      for (let n = 1; publishing; n++) {
        const body = JSON.stringify({
          topic: publisher.topic,
          tenant: publisher.tenant,
          data: { p: publisher.name, n },
        });
        let status = 0;
        try {
          const response = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
          });
          await response.arrayBuffer();
          status = response.status;
        } catch {
          status = -1;
        }
        publisher.statuses.set(status, (publisher.statuses.get(status) ?? 0) + 1);
        if (status === 202) publisher.accepted.push(n);
        else publisher.refused++;
        await sleep(pauseMs);
      }
    });

    await sleep(1_500);
    await broker.kill();
    // Every node notices (an append fails, or its probe does) and serves on its own.
    await untilReadiness(nodes, 'fallback-local', 20_000);
    await sleep(outageMs);
    await broker.restart();
    await untilReadiness(nodes, undefined, 60_000);
    await sleep(1_500);
    publishing = false;
    await Promise.all(loops);

    // Each stream should get every accepted event of its tenant and topic, from every node.
    const expectedOf = (tenant: string, topic: string) =>
      publishers
        .filter((p) => p.tenant === tenant && p.topic === topic)
        .reduce((sum, p) => sum + p.accepted.length, 0);
    const received = (sse: SseStream) => sse.data.length;
    const deadline = Date.now() + 30_000;
    while (
      Date.now() < deadline &&
      streams.some(({ sse, tenant, topic }) => received(sse) < expectedOf(tenant, topic))
    ) {
      await sleep(200);
    }
    await sleep(500);

    return nodes.map((_, node) => {
      let delivered = 0;
      let expected = 0;
      let lost = 0;
      let duplicated = 0;
      let reordered = 0;
      for (const stream of streams.filter((s) => s.node === node)) {
        const seen = new Map<string, number>();
        const lastOf = new Map<string, number>();
        for (const event of stream.sse.data) {
          const { p, n } = JSON.parse(event.data) as { p: string; n: number };
          const key = `${p}#${n}`;
          seen.set(key, (seen.get(key) ?? 0) + 1);
          if ((lastOf.get(p) ?? 0) >= n) reordered++;
          lastOf.set(p, n);
          delivered++;
        }
        for (const publisher of publishers) {
          if (publisher.tenant !== stream.tenant || publisher.topic !== stream.topic) continue;
          for (const n of publisher.accepted) {
            expected++;
            const count = seen.get(`${publisher.name}#${n}`) ?? 0;
            if (count === 0) lost++;
            if (count > 1) duplicated += count - 1;
          }
        }
      }
      const own = publishers.filter((p) => p.node === node);
      return {
        node: node + 1,
        accepted: own.reduce((sum, p) => sum + p.accepted.length, 0),
        delivered,
        expected,
        lost,
        duplicated,
        refused: own.reduce((sum, p) => sum + p.refused, 0),
        reordered,
      };
    });
  } catch (error) {
    for (const [index, node] of nodes.entries()) {
      console.error(`--- node ${index + 1} output (tail):\n${node.output().slice(-3000)}`);
    }
    throw error;
  } finally {
    for (const { sse } of streams) sse.close();
    await Promise.all(nodes.map((node) => node.kill()));
  }
}

/** Until every node's `/readyz` says `degraded` (that state), or `ok` for undefined. */
export async function untilReadiness(
  nodes: readonly HubProcess[],
  degraded: string | undefined,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown[] = [];
  while (Date.now() < deadline) {
    last = await Promise.all(
      nodes.map(async (node) => {
        try {
          return await (await fetch(`${node.url}/readyz`)).json();
        } catch (error) {
          return String(error);
        }
      }),
    );
    const done = last.every((body) => {
      const ready = body as { status?: string; degraded?: string };
      return degraded === undefined ? ready.status === 'ok' : ready.degraded === degraded;
    });
    if (done) return;
    await sleep(100);
  }
  throw new Error(`nodes did not reach ${degraded ?? 'ok'} within ${timeoutMs} ms: ${JSON.stringify(last)}`);
}

/** One line per node, for the closing note. */
export function printFigures(title: string, figures: readonly OutageFigures[]): void {
  console.log(`\n${title}`);
  console.table(
    figures.map(({ node, accepted, delivered, expected, lost, duplicated, refused, reordered }) => ({
      node,
      accepted,
      'delivered (per recipient)': `${delivered}/${expected}`,
      lost,
      duplicated,
      reordered,
      refused,
    })),
  );
}
