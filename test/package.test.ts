import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

// The package imports itself by name, so this checks the built `exports` map (npm test builds first).
describe('the published entry points', () => {
  test('herald exports createHerald and the core types at run time', async () => {
    const herald = await import('herald');
    assert.equal(typeof herald.createHerald, 'function');
    assert.equal(typeof herald.MemoryBroker, 'function');
    assert.equal(typeof herald.HeraldError, 'function');
  });

  test('herald/node, herald/web and herald/fastify export their adapters', async () => {
    assert.equal(typeof (await import('herald/node')).nodeHandler, 'function');
    assert.equal(typeof (await import('herald/web')).webHandler, 'function');
    assert.equal(typeof (await import('herald/fastify')).heraldFastify, 'function');
  });

  test('a hub built from the package publishes in-process', async () => {
    const { createHerald } = await import('herald');
    const hub = createHerald();
    const id = await hub.publish({ topic: 't', data: 1 });
    assert.match(id, /^[0-9a-z]+-1$/);
    await hub.close();
  });

  test('herald exports the bridges and the broker factory that herald serve uses, for embedding apps', async () => {
    const { startBridges, brokerFor } = await import('herald');
    assert.equal(typeof startBridges, 'function');
    const broker = await brokerFor({ url: 'memory' });
    assert.equal(broker.constructor.name, 'MemoryBroker');
    await broker.close();
  });
});
