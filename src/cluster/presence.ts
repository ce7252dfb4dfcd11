import { badRequest, HeraldError } from '../core/errors.ts';
import { checkTopic } from '../core/event.ts';
import type { Hub } from '../core/hub.ts';
import { ALL_TENANTS, type Principal } from '../core/principal.ts';
import { anyMatch } from '../core/topics.ts';
import type { HttpContext } from '../http/context.ts';
import { json } from '../http/replies.ts';
import type { HttpReply, HttpRequest } from '../http/request.ts';
import type { Gather } from './gather.ts';
import { checkedTenant } from './scope.ts';

/** The question this file answers on the bus. */
export const PRESENCE_QUESTION = 'presence';
/**
 * The permission that lets a token that is not admin see who is on a topic (`members`), not only
 * how many: subjects are user ids, which a page may count without being told.
 */
export const MEMBERS_PERMISSION = 'presence:members';
/** The most members one answer lists; past it the answer says `truncated`. */
export const MAX_MEMBERS = 10_000;

/** Who is on a topic across the cluster: `GET /v1/presence`'s answer. */
export interface Presence {
  readonly topic: string;
  /** Streams whose selectors match the topic (exact topics, templates, `*`), on every node. */
  readonly connections: number;
  /** Distinct subjects among them (streams without a subject count as connections only). */
  readonly subjects: number;
  /** With members: each subject and its streams, most streams first. */
  readonly members?: readonly { readonly subject: string; readonly connections: number }[];
  readonly truncated?: boolean;
  readonly nodes: readonly string[];
  /** Live nodes that did not answer in time: their streams are not counted. */
  readonly incomplete: readonly string[];
}

/** One node's part: its streams on the topic, and their subjects with their counts. */
interface LocalPresence {
  readonly connections: number;
  readonly subjects: Record<string, number>;
}

/** This node's streams of `tenant` whose selectors match `topic`. */
export function localPresence(hub: Hub, tenant: string, topic: string): LocalPresence {
  let connections = 0;
  const subjects: Record<string, number> = Object.create(null);
  for (const subscriber of hub.streams()) {
    if (subscriber.tenant !== tenant || !anyMatch(subscriber.selectors, [topic])) continue;
    connections++;
    const subject = subscriber.subject;
    if (subject !== undefined) subjects[subject] = (subjects[subject] ?? 0) + 1;
  }
  return { connections, subjects };
}

/** The question's arguments as another node sent them: checked again, refused when malformed. */
export function presenceArgsFromBus(value: unknown): { tenant: string; topic: string } {
  const fields = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  if (typeof fields.tenant !== 'string' || typeof fields.topic !== 'string') {
    throw new Error('tenant and topic must be strings');
  }
  return { tenant: fields.tenant, topic: fields.topic };
}

/** Whether `principal` may see who (not only how many) is on a topic. */
export const maySeeMembers = (principal: Principal): boolean =>
  principal.admin || principal.permissions.includes(MEMBERS_PERMISSION);

/**
 * `GET /v1/presence?topic=…`: how many streams and distinct subjects of the caller's tenant are
 * on `topic` across the cluster, exact and live (every node is asked). An admin, or a token with
 * a subscribe grant that matches the topic, may ask; `members` (who) only for an admin or a token
 * with the `presence:members` permission.
 */
export async function presence(
  context: HttpContext,
  request: HttpRequest,
  gather: Gather,
): Promise<HttpReply> {
  const principal = await context.authenticate(request, 'subscribe');
  const topic = request.query.get('topic');
  if (topic === null || topic === '') {
    throw badRequest('topic-required', 'topic is required: add ?topic=<one topic>, e.g. ?topic=rooms/42');
  }
  checkTopic(topic);
  if (topic.includes('{') || topic === '*') {
    throw badRequest(
      'invalid-topic',
      `presence is asked of one topic, not a selector: ${JSON.stringify(topic)} would be a template or *; ` +
        'ask for each topic',
      { parameter: 'topic' },
    );
  }
  if (!principal.admin && !anyMatch(principal.subscribe, [topic])) {
    throw new HeraldError(
      403,
      'presence-forbidden',
      `seeing who is on topic ${JSON.stringify(topic)} needs a subscribe grant that matches it (or admin credentials)`,
    );
  }
  const result = await gatherPresence(
    gather,
    presenceTenant(principal, request.query.get('tenant')),
    topic,
    maySeeMembers(principal),
  );
  return json(200, result);
}

/**
 * The caller's tenant, or the one an admin of the default tenant names with `tenant=` (an operator
 * looking at a tenant's topic); a topic is one tenant's, so `*` is not one.
 */
function presenceTenant(principal: Principal, requested: string | null): string {
  if (requested === null || requested === principal.tenant) return principal.tenant;
  if (!principal.admin || principal.tenant !== '') {
    throw new HeraldError(
      403,
      'tenant-forbidden',
      `presence is counted within the caller's tenant ("${principal.tenant}"); only an admin token of the default tenant may name another`,
    );
  }
  if (requested === ALL_TENANTS) {
    throw badRequest(
      'invalid-tenant',
      'presence is counted within one tenant: name it (tenant=acme), not *',
      {
        parameter: 'tenant',
      },
    );
  }
  return checkedTenant(requested);
}

/** Asks every node for its part of `topic`'s presence in `tenant`, and adds them up. */
export async function gatherPresence(
  gather: Gather,
  tenant: string,
  topic: string,
  members: boolean,
): Promise<Presence> {
  const gathered = await gather.ask<LocalPresence>(PRESENCE_QUESTION, { tenant, topic });
  let connections = 0;
  const bySubject = new Map<string, number>();
  for (const part of gathered.answers.values()) {
    connections += typeof part.connections === 'number' ? part.connections : 0;
    for (const [subject, count] of Object.entries(part.subjects ?? {})) {
      if (typeof count === 'number') bySubject.set(subject, (bySubject.get(subject) ?? 0) + count);
    }
  }
  const base = {
    topic,
    connections,
    subjects: bySubject.size,
    nodes: [...gathered.answers.keys()],
    incomplete: gathered.incomplete,
  };
  if (!members) return base;
  const list = [...bySubject]
    .map(([subject, count]) => ({ subject, connections: count }))
    .sort((a, b) => b.connections - a.connections || (a.subject < b.subject ? -1 : 1));
  return {
    ...base,
    members: list.slice(0, MAX_MEMBERS),
    ...(list.length > MAX_MEMBERS ? { truncated: true } : {}),
  };
}
