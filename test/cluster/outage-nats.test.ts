import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { type PrivateNats, startPrivateNats } from '../helpers/nats-server.ts';
import { killAllHubs } from '../helpers/nodes.ts';
import { printFigures, rideOutOutage } from '../helpers/outage-load.ts';

/**
 * Issue 16, item 6, on NATS: a private nats-server (JetStream on disk) is killed with SIGKILL
 * under load and started again on its store; three nodes with `--on-broker-down local` accept
 * every publish throughout, rejoin by themselves, and every stream gets every accepted event of
 * its tenant and topic once, in each publisher's order.
 */
describe('a NATS outage that heals, under load, three nodes', () => {
  let nats: PrivateNats | undefined;
  after(async () => {
    await killAllHubs();
    await nats?.dispose();
  });

  test('every accepted event is delivered once, in order, on every node', { timeout: 240_000 }, async () => {
    nats = await startPrivateNats();
    const server = nats;
    const figures = await rideOutOutage(
      { url: server.url, kill: () => server.kill(), restart: () => server.start() },
      `OUTAGE_${Date.now()}`,
    );
    printFigures('nats-server killed (SIGKILL) and restarted on its store under load, 3 nodes:', figures);
    for (const node of figures) {
      assert.ok(node.accepted > 0, `node ${node.node} accepted events`);
      assert.equal(node.refused, 0, `node ${node.node} refused no publish`);
      assert.equal(node.lost, 0, `node ${node.node} lost none`);
      assert.equal(node.duplicated, 0, `node ${node.node} duplicated none`);
      assert.equal(node.reordered, 0, `node ${node.node} kept each publisher's order`);
      assert.equal(node.delivered, node.expected);
    }
  });
});
