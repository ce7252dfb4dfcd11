import type { Broker } from '../core/log.ts';
import type { BrokerSettings } from './backend.ts';
import { loadOptionalPeer } from './optional-peer.ts';
import { backendOf, brokerUrlHint } from './registry.ts';

export type { BrokerSettings } from './backend.ts';

/**
 * The broker a URL names, made by the backend registered for it. Client libraries are loaded
 * only for the backend in use, so a hub on the memory broker never loads a Redis or NATS client.
 * They are optional peer dependencies of herald: when the one a URL needs is not installed, the
 * error says what to install.
 */
export async function brokerFor(settings: BrokerSettings): Promise<Broker> {
  const { url, stream = 'herald' } = settings;
  const backend = backendOf(url);
  if (backend === undefined) {
    throw new Error(`broker "${url}" is not one Herald knows: use ${brokerUrlHint()}`);
  }
  return loadOptionalPeer(
    () => backend.broker({ ...settings, stream }),
    `the ${backend.title} broker`,
    backend.packages,
  );
}
