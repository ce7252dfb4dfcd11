/**
 * `herald/client`: a Herald client for browsers and Node ≥ 22, with no dependency and no Node
 * built-in. Streams over fetch (token in a header), resumes with Last-Event-ID across reconnections
 * and page reloads, de-duplicates, watches the heartbeat, falls back to long polling behind a
 * buffering proxy; starts from recent history or the latest value per key when asked to.
 */

export type {
  ConnectedPayload,
  DisconnectPayload,
  GapPayload,
  HistoryKind,
  HistoryPayload,
  PresencePayload,
  ReauthPayload,
  ResumeGapReason,
  SystemEventPayloads,
  SystemEventType,
} from '../core/protocol/system-events.ts';
export type {
  ClientOptions,
  ClientStatus,
  EventMessage,
  FilterChange,
  GapInfo,
  HeraldClient,
  HeraldMessage,
  HistoryInfo,
  PresenceInfo,
  StatusChange,
} from './api.ts';
export { backoffDelay, retryAfterMs } from './backoff.ts';
export { createClient } from './client.ts';
export { classify, type ErrorClass, HeraldClientError } from './errors.ts';
export type { EventMap, EventType, PublishInputOf } from './event-map.ts';
export { createParser, type SseEvent, type SseParser } from './sse-parser.ts';
export { defaultStore, type LastEventIdStore, memoryStore } from './store.ts';
