import type { Backend } from '../backend.ts';
import { MemoryBroker } from './broker.ts';

/** The embedded log: one process, nothing to install, named by the word `memory`. */
export const memory: Backend = {
  kind: 'memory',
  title: 'memory',
  schemes: [],
  example: 'memory',
  packages: [],
  broker: async (settings) => new MemoryBroker(settings),
};
