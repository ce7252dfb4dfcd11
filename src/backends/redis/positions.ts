/*
 * Positions of the Redis log: stream entry ids, `<ms>-<seq>`, each part an unsigned 64-bit
 * integer in decimal. Compared as decimals of any length, so no precision is lost past 2^53.
 */

const ENTRY_ID = /^(\d{1,20})-(\d{1,20})$/;
/** The position before every entry: a stream's last id when it never had one. */
export const ORIGIN = '0-0';

/** `<ms>-<seq>` without leading zeros, or undefined when `id` is not entry-id-shaped. */
export function canonical(id: string): string | undefined {
  const match = ENTRY_ID.exec(id);
  if (match === null) return undefined;
  return `${stripZeros(match[1] as string)}-${stripZeros(match[2] as string)}`;
}

/** Orders two positions; one that is not entry-id-shaped counts as the origin. */
export function comparePositions(a: string, b: string): number {
  const [msA, seqA] = parts(a);
  const [msB, seqB] = parts(b);
  return compareDecimal(msA, msB) || compareDecimal(seqA, seqB);
}

function parts(id: string): [ms: string, seq: string] {
  const match = ENTRY_ID.exec(id);
  if (match === null) return ['0', '0'];
  return [stripZeros(match[1] as string), stripZeros(match[2] as string)];
}

function stripZeros(digits: string): string {
  let i = 0;
  while (i < digits.length - 1 && digits.charCodeAt(i) === 48) i++;
  return i === 0 ? digits : digits.slice(i);
}

/** Compares unsigned decimals of any length (entry id parts go up to 2^64 - 1): no precision lost. */
function compareDecimal(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
