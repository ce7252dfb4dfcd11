import type { Backend } from '../backend.ts';
import { subjectPattern } from './subject-pattern.ts';

/** A JetStream stream is the log; core NATS subjects feed `nats:` bridges. */
export const nats: Backend = {
  kind: 'nats',
  title: 'NATS',
  schemes: ['nats'],
  example: 'nats://host:port',
  packages: ['@nats-io/transport-node', '@nats-io/jetstream', '@nats-io/kv'],
  broker: async ({ url, stream, ...limits }) => {
    const { NatsBroker } = await import('./broker.ts');
    // Several servers of a cluster: `nats://a:4222,nats://b:4222`. JetStream names are upper case.
    return new NatsBroker({ servers: url.split(','), stream: stream.toUpperCase(), ...limits });
  },
  bridge: {
    pattern: subjectPattern,
    // Core NATS only: a bridge needs neither JetStream nor KV.
    packages: ['@nats-io/transport-node'],
    defaultUrl: 'nats://127.0.0.1:4222',
    load: async () => {
      const { NatsBridge } = await import('./bridge.ts');
      return (inlets, settings) => NatsBridge.start(inlets, settings);
    },
  },
};
