export type { Action, Authenticator } from './auth/token-authenticator.ts';
export { type BrokerSettings, brokerFor } from './backends/connect.ts';
export {
  DEFAULT_HISTORY_MAX_AGE_MS,
  DEFAULT_HISTORY_SIZE,
  MemoryBroker,
  type MemoryBrokerOptions,
} from './backends/memory/broker.ts';
export { type BridgeOptions, type Bridges, type BridgesStats, startBridges } from './bridges/index.ts';
export { HeraldError, type ProblemDetails } from './core/errors.ts';
export type { EventDraft, HeraldEvent, Priority, PublishInput } from './core/event.ts';
export {
  DEFAULT_HUB_OPTIONS,
  Hub,
  type HubOptions,
  type HubSettings,
  type HubStats,
  type LatestEvent,
  type LatestResult,
  type RewindLimits,
  type SnapshotLimits,
} from './core/hub.ts';
export type {
  BackwardReading,
  Broker,
  HealthReporting,
  HistoryReporting,
  HistoryStats,
  LatestEvents,
  LatestKeeping,
  Location,
  Log,
  LogHealth,
  PersistenceReporting,
} from './core/log.ts';
export type { OverflowPolicy } from './core/outbox.ts';
export { OPEN_PRINCIPAL, type Principal } from './core/principal.ts';
export type { CloseReason, HistoryStart, Sink, Subscriber, Subscription } from './core/subscriber.ts';
export { parseSelector, type Selector } from './core/topics.ts';
export { createHerald, Herald, type HeraldOptions, type LatestQuery } from './herald.ts';
export type { HttpReply, HttpRequest } from './http/request.ts';
export type { MercureOptions } from './mercure/mercure.ts';
export { MERCURE_PATH } from './mercure/protocol.ts';
export { createLogger, type HeraldLogger, type HeraldLoggerOptions } from './observability/logger.ts';
export {
  HeraldMetrics,
  type MetricsOptions,
  type MetricsSource,
  metricsOf,
} from './observability/metrics.ts';
export type { HeraldStats } from './observability/node-stats.ts';
