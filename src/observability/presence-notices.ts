import type { LeftReason } from '../cluster/roster.ts';
import type { StreamLifecycle } from '../core/hub.ts';
import { ALL_TENANTS } from '../core/principal.ts';
import type { Subscriber } from '../core/subscriber.ts';
import { type NodeLeftNotice, noticeStamp, type PresenceNotice } from './webhooks.ts';

/** A subject on a topic of a tenant, joined by a character no tenant, topic or subject holds. */
const keyOf = (tenant: string, topic: string, subject: string) => `${tenant}\u0000${topic}\u0000${subject}`;

/**
 * Presence changes for the app's webhook (`--webhook-url`, docs/hooks.md): `presence.join` when
 * a subject's first stream on an exact topic opens on this node, `presence.leave` when its last
 * one there closes, and `node.left` when a node drops out of the cluster.
 *
 * Node-local on purpose: each node tells of its own streams, once, with no coordination between
 * nodes (no bus message, no shared counter), so the cost is a map update at stream open and close
 * and the notice goes in the node's next batch. The app adds up the nodes (a subject is on a topic
 * while any node says so) or asks `GET /v1/presence` for the cluster's count. `node.left` lets it
 * drop a node's members when that node cannot say goodbye: one node sends it (the live node with
 * the smallest id, as the roster of each node sees it), a node that shuts down sends its own.
 *
 * Which streams count: those with a subject, on their exact topics (not templates or `*`), of one
 * tenant (not an admin's `*`), as for `herald.presence`; the topics a stream has (a change of its
 * selectors leaves the topics it dropped and joins those it added). The state
 * is bounded by the open streams: a count per subject and topic with at least one, and the topics
 * each counted stream opened with.
 */
export class PresenceNotices implements StreamLifecycle {
  private readonly send: (notice: PresenceNotice | NodeLeftNotice) => void;
  private readonly nodeId: string;
  /** This node's open streams per tenant, topic and subject; only counts above 0 are kept. */
  private readonly counts = new Map<string, number>();
  /**
   * The exact topics each counted stream opened with: its selectors may change while it is open,
   * and its close must undo what its open counted, no more and no less.
   */
  private readonly topicsOf = new WeakMap<Subscriber, readonly string[]>();
  /** This node said `node.left` of itself: the streams its shutdown ends send no leave. */
  private gone = false;

  constructor(send: (notice: PresenceNotice | NodeLeftNotice) => void, nodeId: string) {
    this.send = send;
    this.nodeId = nodeId;
  }

  /** StreamLifecycle: a stream opened. */
  opened(subscriber: Subscriber): void {
    const { subject, tenant } = subscriber;
    if (subject === undefined || tenant === ALL_TENANTS || subscriber.carrier || this.gone) return;
    let topics: string[] | undefined;
    for (const selector of subscriber.selectors) {
      if (selector.kind !== 'exact') continue;
      const key = keyOf(tenant, selector.source, subject);
      const count = (this.counts.get(key) ?? 0) + 1;
      this.counts.set(key, count);
      topics ??= [];
      topics.push(selector.source);
      if (count === 1) this.tell('presence.join', tenant, selector.source, subject, count);
    }
    if (topics !== undefined) this.topicsOf.set(subscriber, topics);
  }

  /** StreamLifecycle: a stream closed. */
  closed(subscriber: Subscriber): void {
    const topics = this.topicsOf.get(subscriber);
    if (topics === undefined) return;
    this.topicsOf.delete(subscriber);
    this.leave(subscriber, topics);
  }

  /**
   * StreamLifecycle: a stream's selectors changed. It leaves the exact topics it dropped and joins
   * those it added, as a close and an open would, and its close later undoes what it has then.
   */
  changed(subscriber: Subscriber): void {
    const { subject, tenant } = subscriber;
    if (subject === undefined || tenant === ALL_TENANTS || subscriber.carrier || this.gone) return;
    const counted = this.topicsOf.get(subscriber) ?? [];
    const now = subscriber.selectors.filter((s) => s.kind === 'exact').map((s) => s.source);
    this.leave(
      subscriber,
      counted.filter((topic) => !now.includes(topic)),
    );
    for (const topic of now) {
      if (counted.includes(topic)) continue;
      const key = keyOf(tenant, topic, subject);
      const count = (this.counts.get(key) ?? 0) + 1;
      this.counts.set(key, count);
      if (count === 1) this.tell('presence.join', tenant, topic, subject, count);
    }
    if (now.length > 0) this.topicsOf.set(subscriber, now);
    else this.topicsOf.delete(subscriber);
  }

  /** One stream less of its subject on each of `topics`: a leave for each that has none left. */
  private leave(subscriber: Subscriber, topics: readonly string[]): void {
    const { tenant } = subscriber;
    const subject = subscriber.subject as string;
    for (const topic of topics) {
      const key = keyOf(tenant, topic, subject);
      const count = (this.counts.get(key) ?? 1) - 1;
      if (count > 0) {
        this.counts.set(key, count);
        continue;
      }
      this.counts.delete(key);
      if (!this.gone) this.tell('presence.leave', tenant, topic, subject, 0);
    }
  }

  /**
   * A node dropped out of the roster (`live`: the nodes left, this one included). Sent by one
   * node only, the live one with the smallest id; not for a node that said it was leaving: that
   * node sent its own (`leaving`).
   */
  nodeLeft(node: string, reason: LeftReason, live: readonly string[]): void {
    if (reason === 'leaving' || node === this.nodeId) return;
    if ([...live].sort()[0] !== this.nodeId) return;
    this.send({ ...noticeStamp(), type: 'node.left', node, reason, sentBy: this.nodeId });
  }

  /**
   * This node shuts down: one `node.left` of itself stands for the leave of every member it
   * has, so the streams its shutdown ends send none (a node with many streams would otherwise
   * send a leave each, in its last seconds).
   */
  leaving(): void {
    if (this.gone) return;
    this.gone = true;
    this.send({
      ...noticeStamp(),
      type: 'node.left',
      node: this.nodeId,
      reason: 'leaving',
      sentBy: this.nodeId,
    });
  }

  /** Subject-and-topic counts held: bounded by the open streams (for tests and stats). */
  get size(): number {
    return this.counts.size;
  }

  private tell(
    type: PresenceNotice['type'],
    tenant: string,
    topic: string,
    subject: string,
    connections: number,
  ): void {
    this.send({ ...noticeStamp(), type, node: this.nodeId, tenant, topic, subject, connections });
  }
}
