import type { PublishInput } from '../core/protocol/fields.ts';

/**
 * The one type that ties a publisher to its subscribers: each event type and the `data` its events
 * carry, e.g. `{ 'ai-score': { vin: string; avi: number }; msrp: { vin: string; old: number } }`.
 * Given to `createHerald<Events>()`, `createClient<Events>()` and `createHeraldHooks<Events>()`, it
 * makes a misspelt type or a wrong payload a compile error on both sides. Types only: nothing here
 * reaches a bundle, which is why the server's composition root may import it from the client.
 *
 * Without one, the map is `Record<string, unknown>`: every type goes, and `data` is `unknown`.
 */
export type EventMap = Record<string, unknown>;

/** The event types of a map (every string for the untyped one). */
export type EventType<Events extends EventMap> = keyof Events & string;

/** One publish of a typed map: `type` names one of its events, `data` is that event's payload. */
type TypedPublish<Events, K extends keyof Events & string> = Omit<PublishInput, 'type' | 'data'> &
  // An event published without a type is a `message` (the SSE default).
  (K extends 'message' ? { type?: K } : { type: K }) &
  (undefined extends Events[K] ? { data?: Events[K] } : { data: Events[K] });

type Publishes<Events> = string extends keyof Events
  ? PublishInput
  : { [K in keyof Events & string]: TypedPublish<Events, K> }[keyof Events & string];

/**
 * What `herald.publish` takes: any publish for the untyped map, one of the map's events otherwise.
 *
 * The map goes through a mapped type with a modifier (`-?`) first. Without it the compiler, which
 * cannot tell how a conditional type varies with its parameter, takes `Herald<Events>` to be
 * invariant in `Events`, and a typed hub would not be a `Herald` to `nodeHandler` and the other
 * adapters; through it, the two are compared by their members, where a typed publish is a publish.
 */
export type PublishInputOf<Events extends EventMap> = Publishes<{ [K in keyof Events]-?: Events[K] }>;
