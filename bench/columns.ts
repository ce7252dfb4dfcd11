import type { Column } from './scenario.ts';

/** What every delivery scenario shows: delivered/expected, throughput and latency. */
export const DELIVERY_COLUMNS: readonly Column[] = [
  { key: 'deliveredPct', label: 'Delivered', format: 'percent' },
  { key: 'deliveriesPerSec', label: 'Deliveries/s', format: 'int' },
  { key: 'p50Ms', label: 'p50 ms', format: 'ms' },
  { key: 'p99Ms', label: 'p99 ms', format: 'ms' },
  { key: 'maxMs', label: 'max ms', format: 'ms' },
];

/** S1 and S2: N subscribers of one topic on one server. */
export const FANOUT_COLUMNS: readonly Column[] = [
  { key: 'subscribers', label: 'Subs', format: 'int' },
  { key: 'events', label: 'Events', format: 'int' },
  ...DELIVERY_COLUMNS,
  { key: 'deliveriesPerCpuSec', label: 'Deliveries/CPU-s', format: 'int' },
  { key: 'serverCpuPct', label: 'Server CPU', format: 'percent' },
  { key: 'serverRssBytes', label: 'RSS MiB', format: 'mib' },
  { key: 'clientCpuPct', label: 'Load-gen CPU', format: 'percent' },
  { key: 'foreignCpuPct', label: 'Other CPU', format: 'percent' },
];
