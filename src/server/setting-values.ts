import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { shown } from './masking.ts';
import { closest, orList } from './suggestions.ts';

/**
 * The kinds of value a setting takes (durations, sizes, whole numbers, on/off switches, choices,
 * text, URLs, lists), each read the same way from a flag, a `HERALD_…` variable or a config file,
 * and written back as it would be typed. A refused value gets a message in plain words that names
 * what is expected and quotes the value with any credential in it masked.
 */

const UNITS_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const UNITS_BYTES: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1024,
  kib: 1024,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
};

const refuse = (ctx: z.RefinementCtx, message: string) => {
  ctx.addIssue({ code: 'custom', message });
  return z.NEVER;
};

function parseMs(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(String(value));
  if (match === null) return undefined;
  return Math.round(Number(match[1]) * (UNITS_MS[(match[2] ?? 'ms').toLowerCase()] ?? 1));
}

function parseBytes(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib)?\s*$/i.exec(String(value));
  if (match === null) return undefined;
  return Math.round(Number(match[1]) * (UNITS_BYTES[(match[2] ?? 'b').toLowerCase()] ?? 1));
}

/** `500ms`, `15s`, `5m`, `24h`, `7d`, or a plain number of milliseconds; at least `min` ms. */
export const duration = (min = 0) =>
  z.unknown().transform((value, ctx) => {
    const ms = parseMs(value);
    if (ms === undefined)
      return refuse(ctx, `${shown(value)} is not a duration; use e.g. 500ms, 15s, 5m, 24h or 7d`);
    if (ms < min)
      return refuse(
        ctx,
        `${shown(value)} is too short; use ${min <= 1 ? 'more than 0' : `at least ${formatDuration(min)}`}`,
      );
    return ms;
  });

/** `512KiB`, `1MiB`, `4mb`, or a plain number of bytes (kb and mb are binary here too); more than 0. */
export const size = z.unknown().transform((value, ctx) => {
  const bytes = parseBytes(value);
  if (bytes === undefined)
    return refuse(ctx, `${shown(value)} is not a size; use e.g. 512KiB, 1MiB or a number of bytes`);
  if (bytes < 1) return refuse(ctx, `${shown(value)} is too small; use more than 0 bytes`);
  return bytes;
});

export const wholeNumber = (min: number, max?: number, zero?: string) =>
  z.unknown().transform((value, ctx) => {
    const n =
      typeof value === 'number'
        ? value
        : typeof value === 'string' && /^\s*\d+\s*$/.test(value)
          ? Number(value)
          : Number.NaN;
    if (Number.isInteger(n) && n >= min && (max === undefined || n <= max)) return n;
    const range = max === undefined ? `of ${min} or more` : `from ${min} to ${max}`;
    return refuse(ctx, `${shown(value)} is not a whole number ${range}${zero ? ` (0: ${zero})` : ''}`);
  });
export const count = wholeNumber(1);
/** 0 turns the limit off. */
export const limit = wholeNumber(0, undefined, 'no limit');

/** A switch (`--anonymous`) or an `on|off` setting; on and off, or true/false, yes/no, 1/0. */
export const onOff = z.unknown().transform((value, ctx) => {
  if (typeof value === 'boolean') return value;
  if (/^\s*(1|true|yes|on)\s*$/i.test(String(value))) return true;
  if (/^\s*(0|false|no|off|)\s*$/i.test(String(value))) return false;
  return refuse(ctx, `${shown(value)} is not true or false; use on or off (or true/false, yes/no, 1/0)`);
});

/** One of `values`, in any case; a near miss is named. */
export const choice = <const T extends readonly string[]>(values: T) =>
  z.unknown().transform((value, ctx): T[number] => {
    const found = values.find((candidate) => candidate.toLowerCase() === String(value).trim().toLowerCase());
    if (found !== undefined) return found;
    const near = closest(String(value), values);
    return refuse(
      ctx,
      `${shown(value)} is not ${orList(values)}${near === undefined ? '' : ` (did you mean ${near}?)`}`,
    );
  });

/** Text that is not empty (a number in a config file is taken as its digits). */
export const text = z.unknown().transform((value, ctx) => {
  if ((typeof value === 'string' && value !== '') || typeof value === 'number') return String(value);
  return refuse(ctx, typeof value === 'string' ? 'is empty; give a value' : 'must be text');
});

export const pattern = (re: RegExp, hint: string) =>
  z.unknown().transform((value, ctx) => {
    if ((typeof value === 'string' || typeof value === 'number') && re.test(String(value)))
      return String(value);
    return refuse(ctx, `use ${hint}; got ${shown(value)}`);
  });

export const httpUrl = z.unknown().transform((value, ctx) => {
  try {
    const url = new URL(String(value));
    if (url.protocol === 'http:' || url.protocol === 'https:') return url.toString();
  } catch {
    // Refused below.
  }
  return refuse(ctx, `${shown(value)} is not an http:// or https:// URL`);
});

export const listOf = (separator: RegExp) =>
  z.unknown().transform((value, ctx) => {
    if (typeof value !== 'string' && !Array.isArray(value)) return refuse(ctx, 'must be a list of text');
    return (Array.isArray(value) ? value.map(String) : value.split(separator))
      .map((item) => item.trim())
      .filter((item) => item !== '');
  });
export const list = listOf(/,/);

/** A number of processes, or `auto`: one per CPU the process may use. */
export const processes = z.unknown().transform((value, ctx) => {
  if (/^\s*auto\s*$/i.test(String(value))) return availableParallelism();
  const n =
    typeof value === 'number' ? value : /^\s*\d+\s*$/.test(String(value)) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > 1024)
    return refuse(ctx, `${shown(value)} is not a number of processes; use 1 to 1024, or auto`);
  return n;
});

/** A duration as the settings take it (`15m`, `1h`), in ms; throws with what is expected. */
export function parseDuration(value: string): number {
  const parsed = duration().safeParse(value);
  if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? `"${value}" is not a duration`);
  return parsed.data;
}

/** `15s`, `24h`, `0`: a number of ms as the settings take it. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    // 24h rather than 1d; 7d as it is.
    if (ms % size === 0 && (unit !== 'd' || ms >= 2 * size)) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** `1MiB`, `512KiB`, `100`: a number of bytes as the settings take it. */
export function formatSize(bytes: number): string {
  if (bytes !== 0 && bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2}MiB`;
  if (bytes !== 0 && bytes % 1024 === 0) return `${bytes / 1024}KiB`;
  return String(bytes);
}
