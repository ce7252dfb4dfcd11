import { subjectStreamsKey, tenantStreamsKey } from './limit-keys.ts';
import type { SharedCounterGuard } from './shared-counter-guard.ts';

/**
 * Open streams per tenant and per subject counted across nodes: a stream takes a slot under each
 * limited key on the broker (both asked at once) before it opens, and gives them back when it
 * closes. A key the broker did not answer for is left to this node to check (`unavailable`).
 */

/** What the broker said of one key; undefined for a key with no limit. */
export type SlotVerdict = 'counted' | 'refused' | 'unavailable' | undefined;

export interface StreamSlots {
  readonly tenant: SlotVerdict;
  readonly subject: SlotVerdict;
  /** Gives back the slots that were counted; calling it again does nothing. */
  readonly release: () => void;
}

export interface StreamSlotRequest {
  readonly tenant: string;
  /** Undefined for an anonymous stream, which is only counted against its tenant. */
  readonly subject: string | undefined;
  /** 0: not limited, not asked. */
  readonly maxPerTenant: number;
  readonly maxPerSubject: number;
}

export async function acquireStreamSlots(
  guard: SharedCounterGuard,
  request: StreamSlotRequest,
): Promise<StreamSlots> {
  const tenantKey = request.maxPerTenant > 0 ? tenantStreamsKey(request.tenant) : undefined;
  const subjectKey =
    request.maxPerSubject > 0 && request.subject !== undefined
      ? subjectStreamsKey(request.tenant, request.subject)
      : undefined;
  const [tenant, subject] = await Promise.all([
    tenantKey === undefined ? undefined : guard.acquire(tenantKey, request.maxPerTenant).then(verdict),
    subjectKey === undefined ? undefined : guard.acquire(subjectKey, request.maxPerSubject).then(verdict),
  ]);
  const counted = [
    ...(tenant === 'counted' ? [tenantKey as string] : []),
    ...(subject === 'counted' ? [subjectKey as string] : []),
  ];
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    for (const key of counted) guard.release(key);
  };
  // Refused by one limit: the slot the other counted is not kept for a stream that never opens.
  if (tenant === 'refused' || subject === 'refused') release();
  return { tenant, subject, release };
}

const verdict = (counted: boolean | undefined): SlotVerdict =>
  counted === undefined ? 'unavailable' : counted ? 'counted' : 'refused';
