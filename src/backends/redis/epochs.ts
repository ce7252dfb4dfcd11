import { randomBytes } from 'node:crypto';
import { canonical, comparePositions, ORIGIN } from './positions.ts';

/** How many epochs a feed remembers having left (their entries may still be in the stream). */
const RETIRED_EPOCHS = 16;

/** Which incarnation of the log: its id, and the position every entry of it comes after. */
export interface Epoch {
  readonly id: string;
  readonly start: string;
}

/**
 * What this node knows of the log's epochs (see EPOCH_LUA in scripts.ts), from every answer of
 * Redis that names one: the append's, locate's, the feed's checks. Every script is told the
 * newest one and how far this node saw in it, so a log that went back is noticed by any of them.
 */
export class Epochs {
  /** The newest epoch any answer of Redis named. */
  current: Epoch | undefined;
  /** The furthest position known to exist in `current`: a log whose last id is before it went back. */
  seen = ORIGIN;
  /** Epochs the feed has left, whose entries it passes on as they come (the newest last). */
  readonly retired: string[] = [];

  retire(id: string): void {
    if (this.retired.includes(id)) return;
    this.retired.push(id);
    if (this.retired.length > RETIRED_EPOCHS) this.retired.shift();
  }

  /** Takes in an epoch named by Redis, and the furthest position known in it. */
  learn(id: string, start: string, last?: string): void {
    if (this.current?.id !== id) {
      if (this.retired.includes(id) || canonical(start) === undefined) return;
      this.current = { id, start };
      this.seen = start;
    }
    if (last !== undefined && canonical(last) !== undefined && comparePositions(last, this.seen) > 0) {
      this.seen = last;
    }
  }

  /** ARGV of the epoch check every script starts with (see EPOCH_LUA). */
  args(proof: boolean): string[] {
    return [randomBytes(9).toString('base64url'), this.current?.id ?? '', this.seen, proof ? '1' : '0'];
  }
}
