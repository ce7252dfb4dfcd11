import { HELD_ID } from '../../core/event.ts';

/*
 * Positions of events a node accepted while its broker was down, which are also their ids:
 * `<base>~<node>~<seq>`. `base` is the broker position this node's feed had reached when the
 * outage began ('' when it never reached the broker), `node` a tag unique to the process, `seq`
 * its count of events accepted locally (it never starts over, whatever the number of outages).
 *
 * No broker parses them as its own (a `~` is in none of their positions), no publisher may choose
 * one (`validateEvent` refuses the shape), and two nodes never make the same one. Any node can
 * tell from one where its client stood: after `base` in the broker's log, and after the sender's
 * held events up to `seq`.
 */

export interface HeldPosition {
  /** The broker position the outage began after; '' before every broker position. */
  readonly base: string;
  readonly node: string;
  readonly seq: number;
}

export function heldPosition(base: string, node: string, seq: number): string {
  return `${base}~${node}~${seq}`;
}

/** The parts of a held position, or undefined when `pos` is a broker's own (or any other id). */
export function parseHeld(pos: string): HeldPosition | undefined {
  // Every broker's positions are digits and dashes: the common case costs one character test.
  if (!pos.includes('~')) return undefined;
  const match = HELD_ID.exec(pos);
  if (match === null) return undefined;
  return { base: match[1] ?? '', node: match[2] as string, seq: Number(match[3]) };
}

/**
 * One order over broker and held positions: a held position sorts right after its base and
 * before the broker's next position, held positions of one base by node, then sequence. It is
 * this node's feed order (what it held was delivered right after where its feed stood), so the
 * hub's cursor only moves forwards, across outages too: a later outage's base is at or past the
 * earlier one's, and the sequence goes on.
 */
export function comparePositions(a: string, b: string, broker: (a: string, b: string) => number): number {
  const heldA = parseHeld(a);
  const heldB = parseHeld(b);
  if (heldA === undefined && heldB === undefined) return broker(a, b);
  const byBase = compareBases(heldA?.base ?? a, heldB?.base ?? b, broker);
  if (byBase !== 0) return byBase;
  if (heldA === undefined) return -1;
  if (heldB === undefined) return 1;
  if (heldA.node !== heldB.node) return heldA.node < heldB.node ? -1 : 1;
  return heldA.seq - heldB.seq;
}

function compareBases(a: string, b: string, broker: (a: string, b: string) => number): number {
  if (a === '' || b === '') return a === b ? 0 : a === '' ? -1 : 1;
  return broker(a, b);
}
