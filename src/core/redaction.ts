import type { HeraldEvent } from './event.ts';
import { encodeFrame } from './sse.ts';

/**
 * Field-level visibility (seed 004's "sensitive data removal"). A publish may mark fields of its
 * data as visible only to holders of a permission; a subscriber without it gets the event with
 * those fields removed. Subscribers are grouped by which of the event's permissions they hold (a
 * bit each), and each group's frame is encoded once and shared, never once per subscriber.
 */

/** The frame a subscriber holding `permissions` gets for this event, encoded once per visibility. */
export function frameFor(event: HeraldEvent, permissions: ReadonlySet<string>): Uint8Array {
  const redact = event.redact;
  if (redact === undefined) {
    event.frame ??= encodeFrame(event);
    return event.frame;
  }
  const needed = permissionsOf(redact);
  let mask = 0;
  for (let i = 0; i < needed.length; i++) if (permissions.has(needed[i] as string)) mask |= 1 << i;
  event.variants ??= new Map();
  let frame = event.variants.get(mask);
  if (frame === undefined) {
    const hidden = Object.entries(redact)
      .filter(([, permission]) => (mask & (1 << needed.indexOf(permission))) === 0)
      .map(([pointer]) => pointer);
    event.frame ??= encodeFrame(event);
    frame = hidden.length === 0 ? event.frame : encodeFrame(event, removeFields(event.data, hidden));
    event.variants.set(mask, frame);
  }
  return frame;
}

/** The data a subscriber holding `permissions` may see, as text (for the JSON of the poll API). */
export function visibleData(event: HeraldEvent, permissions: ReadonlySet<string>): string {
  if (event.redact === undefined) return event.data;
  const hidden = Object.entries(event.redact)
    .filter(([, permission]) => !permissions.has(permission))
    .map(([pointer]) => pointer);
  return hidden.length === 0 ? event.data : removeFields(event.data, hidden);
}

// The sorted permissions of a redaction map, computed once per map (shared by every recipient).
const permissionLists = new WeakMap<object, string[]>();
function permissionsOf(redact: Readonly<Record<string, string>>): string[] {
  let list = permissionLists.get(redact);
  if (list === undefined) {
    list = [...new Set(Object.values(redact))].sort();
    permissionLists.set(redact, list);
  }
  return list;
}

/** Removes the fields at `pointers` (RFC 6901) from JSON text. Missing fields are ignored. */
export function removeFields(json: string, pointers: readonly string[]): string {
  const document: unknown = JSON.parse(json);
  // Locate every target first, then delete: removing an array element shifts the ones after it.
  const fromArrays = new Map<unknown[], number[]>();
  for (const pointer of pointers) {
    const tokens = pointer.slice(1).split('/').map(unescapeToken);
    const last = tokens.pop() as string;
    let parent: unknown = document;
    for (const token of tokens) parent = child(parent, token);
    if (Array.isArray(parent)) {
      const index = arrayIndex(last);
      if (index !== undefined && index < parent.length)
        fromArrays.set(parent, [...(fromArrays.get(parent) ?? []), index]);
    } else if (typeof parent === 'object' && parent !== null && Object.hasOwn(parent, last)) {
      delete (parent as Record<string, unknown>)[last];
    }
  }
  for (const [array, indexes] of fromArrays) {
    for (const index of [...new Set(indexes)].sort((a, b) => b - a)) array.splice(index, 1);
  }
  return JSON.stringify(document);
}

const unescapeToken = (token: string) => token.replaceAll('~1', '/').replaceAll('~0', '~');

function child(parent: unknown, token: string): unknown {
  if (Array.isArray(parent)) {
    const index = arrayIndex(token);
    return index === undefined ? undefined : parent[index];
  }
  if (typeof parent === 'object' && parent !== null && Object.hasOwn(parent, token)) {
    return (parent as Record<string, unknown>)[token];
  }
  return undefined;
}

function arrayIndex(token: string): number | undefined {
  return /^(0|[1-9][0-9]*)$/.test(token) ? Number(token) : undefined;
}
