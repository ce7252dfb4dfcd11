import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import { HeraldError } from '../../core/errors.ts';
import { chosenIdKey } from '../codec.ts';
import { duplicate, isWrongLastSequence } from './failures.ts';
import { POSITION, sequence } from './positions.ts';

/*
 * Publisher-chosen ids on NATS: a KV bucket, id → sequence, with the stream's MaxAge. An id is
 * claimed (created, or taken over once its event left the log) before its event is published,
 * so a duplicate is refused before anything is in the log, and pointed at its sequence after.
 */

/** Publisher-chosen ids longer than this (in UTF-8 bytes) cannot have been issued. */
export const MAX_ID_BYTES = 1024;
/** What a claimed id maps to until its event has a sequence. */
const PENDING = '';
/** KV keys longer than this (a long tenant and a long id) are hashed: a subject has a length limit. */
const MAX_KEY_CHARS = 1024;

export interface Claim {
  readonly id: string;
  readonly key: string;
  /** The KV revision of the claim: later writes are conditional on it. */
  readonly revision: number;
}

/**
 * Takes `id` for a new event, or refuses it with 409 while an event with that id is retained.
 * `firstSeq` tells the oldest sequence the log still holds.
 */
export async function claim(
  ids: KV,
  firstSeq: () => Promise<number>,
  tenant: string,
  id: string,
): Promise<Claim> {
  const key = keyOf(tenant, id);
  try {
    return { id, key, revision: await ids.create(key, PENDING) };
  } catch (error) {
    if (!isWrongLastSequence(error)) throw error;
  }
  // Taken. Free again if its event has left the log by count (age expires the key with it).
  const entry = await ids.get(key);
  const seq = entry?.operation === 'PUT' ? sequence(entry.string()) : undefined;
  if (entry === null || seq === undefined || seq >= (await firstSeq())) {
    throw duplicate(id);
  }
  try {
    return { id, key, revision: await ids.update(key, PENDING, entry.revision) };
  } catch (error) {
    throw isWrongLastSequence(error) ? duplicate(id) : error;
  }
}

/** Gives back the claims of events that were not stored. */
export async function release(
  ids: KV,
  claims: readonly Claim[],
  onError: (error: unknown, context: string) => void,
): Promise<void> {
  await Promise.all(
    claims.map((claim) =>
      ids.delete(claim.key, { previousSeq: claim.revision }).catch((error: unknown) => {
        // The id stays taken until the bucket's TTL: a retry with it is refused as a duplicate.
        onError(error, `releasing id "${claim.id}" after a failed append`);
      }),
    ),
  );
}

/**
 * The KV key of a chosen id, in its tenant's namespace (`chosenIdKey`). KV keys are subject
 * tokens, `[-/_=.a-zA-Z0-9]`: base64url keeps any id within them; a long one is hashed.
 */
export function keyOf(tenant: string, id: string): string {
  const key = Buffer.from(chosenIdKey(tenant, id)).toString('base64url');
  return key.length < MAX_KEY_CHARS ? `i${key}` : `h${createHash('sha256').update(key).digest('base64url')}`;
}

export function checkChosenId(id: string): void {
  // A chosen id that reads as a sequence would make `locate` ambiguous.
  if (POSITION.test(id)) {
    throw new HeraldError(
      400,
      'invalid-id',
      `id "${id}" is a plain number, which on the NATS broker names a log position; choose another id`,
    );
  }
  if (id === '' || Buffer.byteLength(id) > MAX_ID_BYTES) {
    throw new HeraldError(400, 'invalid-id', `an id must hold 1 to ${MAX_ID_BYTES} bytes`);
  }
}
