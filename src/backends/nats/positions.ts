import type { StreamInfo } from '@nats-io/jetstream';
import type { Location } from '../../core/log.ts';
import { epochOf } from './stream.ts';

/** A position: a stream sequence in canonical decimal, "0" being the head of a log never written. */
export const POSITION = /^(?:0|[1-9][0-9]{0,15})$/;

/** The sequence a position names; 0 for what is not one. */
export function seqOf(pos: string): number {
  return POSITION.test(pos) ? Number(pos) : 0;
}

/** The sequence a stored value names (a chosen id's entry), or undefined: none yet, or not one. */
export function sequence(value: string): number | undefined {
  return POSITION.test(value) && value !== '0' ? Number(value) : undefined;
}

/** Where a replay after `seq` stands: everything after it must still be in the stream. */
export function where(seq: number, info: StreamInfo): Location {
  const { state } = info;
  // From a log that was lost or replaced: what followed it may be gone without trace.
  const start = epochOf(info).start;
  if (seq < start) return { kind: 'reset', from: String(start) };
  if (seq > state.last_seq) return { kind: 'unknown' };
  if (seq < state.first_seq - 1) return { kind: 'expired', from: String(state.first_seq - 1) };
  return { kind: 'found', pos: String(seq) };
}
