/**
 * What the nodes of a cluster say to each other on the bus (`Broadcasting`): one JSON object per
 * message, tagged with the protocol (`herald`), its kind and the node that sent it. Every node hears
 * every message, its own included; a message it cannot read (another version, garbage on a shared
 * channel) is ignored rather than trusted, since anything that can write to the broker can write
 * to the bus.
 */

/** The protocol tag: a message without it is not Herald's cluster protocol of this version. */
export const PROTOCOL = 'herald-cluster/1';

/** A node's figures, as its heartbeat carries them and `GET /v1/nodes` lists them. */
export interface NodeFigures {
  /** Open streams on the node (connections: a mux stream's channels count, not the mux). */
  readonly connections: number;
  /** Events the node accepted, and wrote to its streams, since it started (every tenant). */
  readonly published: number;
  readonly delivered: number;
  /** How late the node's feed got the last event it dispatched, ms. */
  readonly feedLagMs: number;
  /** Per tenant: its open streams, and the events published and delivered on that node since it started. */
  readonly tenants: Readonly<Record<string, TenantFigures>>;
}

export interface TenantFigures {
  readonly streams: number;
  readonly published: number;
  readonly delivered: number;
}

export interface Heartbeat {
  readonly kind: 'heartbeat';
  readonly from: string;
  /** When the node started, ms since the epoch. */
  readonly startedAt: number;
  /** Why the node is not running as configured (`fallback-local`), when it is not. */
  readonly degraded?: string;
  readonly figures: NodeFigures;
  /** Sent by a node that just joined: every node answers with a heartbeat at once. */
  readonly hello?: boolean;
  /** Every topic this node has presence streams on ([tenant, topic]): the others announce changes on them. */
  readonly watching?: readonly (readonly [string, string])[];
}

/** A node has presence streams on these topics now ([tenant, topic]). */
export interface Watching {
  readonly kind: 'watching';
  readonly from: string;
  readonly topics: readonly (readonly [string, string])[];
}

/** A node closing: the others drop it at once instead of after the lease. */
export interface Leaving {
  readonly kind: 'leaving';
  readonly from: string;
}

/** A question to every node (see gather.ts). */
export interface Question {
  readonly kind: 'ask';
  readonly from: string;
  readonly id: string;
  readonly question: string;
  readonly args: unknown;
}

/** One node's answer to a question, for the node that asked (`to`). */
export interface Answer {
  readonly kind: 'answer';
  readonly from: string;
  readonly to: string;
  readonly id: string;
  /** The answer; absent with `error`: the node could not answer. */
  readonly body?: unknown;
  readonly error?: string;
}

/** Streams that opened or closed on presence-watched topics, batched (see presence.ts). */
export interface PresenceChanges {
  readonly kind: 'presence';
  readonly from: string;
  /** One more than the node's previous batch: a snapshot that counted up to it skips it. */
  readonly sequence: number;
  /** [tenant, topic, subject, +1 | -1] per stream opened or closed. */
  readonly changes: readonly (readonly [string, string, string, number])[];
}

export type ClusterMessage = Heartbeat | Leaving | Question | Answer | PresenceChanges | Watching;

export const encodeMessage = (message: ClusterMessage): string =>
  JSON.stringify({ protocol: PROTOCOL, ...message });

/** The message in `text`, or undefined when it is not one of this protocol. */
export function decodeMessage(text: string): ClusterMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const message = value as Record<string, unknown>;
  if (message.protocol !== PROTOCOL || typeof message.from !== 'string') return undefined;
  switch (message.kind) {
    case 'heartbeat':
      return isInstant(message.startedAt) &&
        isFigures(message.figures) &&
        (message.degraded === undefined || typeof message.degraded === 'string')
        ? (message as unknown as Heartbeat)
        : undefined;
    case 'leaving':
      return message as unknown as Leaving;
    case 'ask':
      return typeof message.id === 'string' && typeof message.question === 'string'
        ? (message as unknown as Question)
        : undefined;
    case 'answer':
      return typeof message.id === 'string' && typeof message.to === 'string'
        ? (message as unknown as Answer)
        : undefined;
    case 'presence':
      return Array.isArray(message.changes) && typeof message.sequence === 'number'
        ? (message as unknown as PresenceChanges)
        : undefined;
    case 'watching':
      return Array.isArray(message.topics) ? (message as unknown as Watching) : undefined;
    default:
      return undefined;
  }
}

/**
 * A time a Date can hold (ms since the epoch, at most 100 million days either way): a heartbeat
 * whose start is not one would make every answer that dates the node (`/v1/nodes`, the names
 * limits count under) throw, on every node, for as long as it is repeated.
 */
const isInstant = (value: unknown): value is number =>
  typeof value === 'number' && Number.isFinite(value) && Math.abs(value) <= 8.64e15;

/** A count or a duration as a heartbeat carries it: a finite number, 0 or more. */
const isCount = (value: unknown): value is number =>
  typeof value === 'number' && Number.isFinite(value) && value >= 0;

/**
 * Figures of the shape `/v1/nodes` and the page pass on as they are: anything else on the bus
 * (a node of another version, a forged message) is dropped rather than shown or summed.
 */
function isFigures(value: unknown): value is NodeFigures {
  if (typeof value !== 'object' || value === null) return false;
  const figures = value as Record<string, unknown>;
  const tenants = figures.tenants;
  if (typeof tenants !== 'object' || tenants === null || Array.isArray(tenants)) return false;
  for (const each of Object.values(tenants)) {
    const tenant = (typeof each === 'object' && each !== null ? each : {}) as Record<string, unknown>;
    if (!isCount(tenant.streams) || !isCount(tenant.published) || !isCount(tenant.delivered)) return false;
  }
  return (
    isCount(figures.connections) &&
    isCount(figures.published) &&
    isCount(figures.delivered) &&
    isCount(figures.feedLagMs)
  );
}
