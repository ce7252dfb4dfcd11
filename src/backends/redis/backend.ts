import type { Backend } from '../backend.ts';
import { channelPattern } from './channel-pattern.ts';

/** A Redis stream is the log; Redis pub/sub feeds `redis:` bridges. */
export const redis: Backend = {
  kind: 'redis',
  title: 'Redis',
  schemes: ['redis', 'rediss'],
  example: 'redis://host:port[/db]',
  packages: ['redis'],
  broker: async (settings) => {
    const { RedisBroker } = await import('./broker.ts');
    return new RedisBroker(settings);
  },
  bridge: {
    pattern: channelPattern,
    packages: ['redis'],
    defaultUrl: 'redis://127.0.0.1:6379',
    load: async () => {
      const { RedisBridge } = await import('./bridge.ts');
      return (inlets, settings) => RedisBridge.start(inlets, settings);
    },
  },
};
