import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type HubProcess, killAllHubs, spawnHub } from '../helpers/nodes.ts';
import { sleep } from '../helpers/server.ts';
import { openStream, type SseStream } from '../helpers/sse-client.ts';
import { bearer, SECRET, token } from '../helpers/tokens.ts';

/**
 * `herald serve --workers 2`: each worker is a node of the cluster, on the primary's pipe for a
 * bus. Whichever worker answers, `/v1/nodes` lists both and `/v1/connections` every worker's
 * streams.
 */

let hub: HubProcess;
const streams: SseStream[] = [];

before(async () => {
  hub = await spawnHub([
    '--workers',
    '2',
    '--jwt-secret',
    SECRET,
    '--node-heartbeat',
    '250ms',
    '--node-lease',
    '5s',
  ]);
});

after(async () => {
  for (const stream of streams) stream.close();
  await killAllHubs();
});

test('every worker is a node: /v1/nodes lists both, /v1/connections every stream', async () => {
  const admin = await token({ admin: true });
  const nodes = async () => {
    const response = await fetch(`${hub.url}/v1/nodes`, { headers: bearer(admin) });
    return ((await response.json()) as { nodes: { id: string }[] }).nodes;
  };
  const deadline = Date.now() + 30_000;
  while ((await nodes()).length < 2 && Date.now() < deadline) await sleep(100);
  assert.equal((await nodes()).length, 2);
  // Streams land on either worker (the kernel spreads connections): enough that both hold some.
  for (let i = 0; i < 6; i++) {
    const jwt = await token({ tenant: 'acme', sub: `user-${i}` });
    const stream = await openStream(`${hub.url}/v1/events?topic=w`, { headers: bearer(jwt) });
    streams.push(stream);
    await stream.untilConnected();
  }
  const response = await fetch(`${hub.url}/v1/connections?tenant=acme`, { headers: bearer(admin) });
  const body = (await response.json()) as { connections: { subject: string }[]; incomplete: string[] };
  assert.equal(body.connections.length, 6);
  assert.deepEqual(body.incomplete, []);
});
