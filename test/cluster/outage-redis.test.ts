import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { killAllHubs } from '../helpers/nodes.ts';
import { printFigures, rideOutOutage } from '../helpers/outage-load.ts';
import { type PrivateRedis, startPrivateRedis } from '../helpers/redis-server.ts';

/**
 * Issue 16, item 6, on Redis: a persistent private Redis (append-only, fsync always) is killed
 * with SIGKILL under load and restarted on its data; three nodes with `--on-broker-down local`
 * accept every publish throughout, rejoin by themselves, and every stream gets every accepted
 * event of its tenant and topic once, in each publisher's order.
 */
describe('a Redis outage that heals, under load, three nodes', () => {
  let redis: PrivateRedis | undefined;
  after(async () => {
    await killAllHubs();
    await redis?.stop();
  });

  test('every accepted event is delivered once, in order, on every node', { timeout: 240_000 }, async () => {
    redis = await startPrivateRedis({ persistent: true });
    const figures = await rideOutOutage(redis, `outage_redis_${Date.now()}`);
    printFigures('Redis killed (SIGKILL) and restarted under load, 3 nodes:', figures);
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
