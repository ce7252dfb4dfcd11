import type { Log } from './log.ts';

/**
 * Why a resume could not continue exactly where the client was: its id was never in the log (in
 * its tenant), what followed it is no longer retained, or the log was lost or replaced since.
 */
export type GapReason = 'unknown' | 'expired' | 'reset';

/** Where a client that sent a `Last-Event-ID` goes on from, for streams and polls alike. */
export type ResumePoint =
  /** The id is in the log: read on after `after`, its position. */
  | { readonly after: string; readonly gap: undefined }
  /**
   * What followed the id is partly gone: say so, then read all that is left, after `after` (`null`:
   * from the oldest retained event). That is also where the client resumes from next time, so it
   * is not told of the same loss again.
   */
  | { readonly after: string | null; readonly gap: 'expired' | 'reset' }
  /** Never seen in the client's tenant, or malformed: nothing to read on from. */
  | { readonly after: undefined; readonly gap: 'unknown' };

/** Looks `lastEventId` up in the log, for a client of `tenant` (see `Log.locate`). */
export async function locateResume(log: Log, lastEventId: string, tenant: string): Promise<ResumePoint> {
  const location = await log.locate(lastEventId, tenant);
  switch (location.kind) {
    case 'found':
      return { after: location.pos, gap: undefined };
    case 'expired':
    case 'reset':
      return { after: location.from, gap: location.kind };
    default:
      return { after: undefined, gap: 'unknown' };
  }
}
