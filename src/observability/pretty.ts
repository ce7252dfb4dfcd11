import type { DestinationStream } from 'pino';

/**
 * Log lines for a person at a terminal, one line per entry:
 *
 *   14:03:07.412 INFO  herald 0.1.0 listening on http://127.0.0.1:8080 (…)  url=http://127.0.0.1:8080 broker=memory
 *
 * A pino destination that turns each JSON line pino writes into such a line, so every field, the
 * censoring of credentials included, is exactly what the JSON format carries (it is made from it).
 * Written here rather than taken from pino-pretty: that package brings about a dozen dependencies
 * and a worker-thread transport for what is some sixty lines, and `herald serve` would load it at
 * every start. Control characters (a request header can carry ANSI escapes) are escaped, never
 * written to the terminal; an error shows its type, message and first stack frame, on the same line.
 *
 * `herald serve --log-format pretty|json|auto` (HERALD_LOG_FORMAT) chooses; `auto`, the default,
 * is pretty when stdout is a terminal and JSON otherwise (a file, a pipe, a log shipper).
 */

export type LogFormat = 'auto' | 'pretty' | 'json';

interface Output {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  hasColors?(): boolean;
}

/** `auto` decided: pretty for a terminal, JSON for anything else. */
export function resolveLogFormat(format: LogFormat, out: Output = process.stdout): 'pretty' | 'json' {
  if (format !== 'auto') return format;
  return out.isTTY === true ? 'pretty' : 'json';
}

/**
 * What `createLogger` takes to write in `format`: nothing for JSON (pino's own fast destination
 * on stdout), a pretty destination otherwise.
 */
export function logDestination(
  format: LogFormat,
  out: Output = process.stdout,
): { destination?: DestinationStream } {
  return resolveLogFormat(format, out) === 'pretty' ? { destination: prettyDestination(out) } : {};
}

/** A destination for pino that writes each entry to `out` as one readable line. */
export function prettyDestination(out: Output = process.stdout): DestinationStream {
  const color = out.hasColors?.() ?? false;
  return {
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line !== '') out.write(`${prettyLine(line, color)}\n`);
    },
  };
}

const LEVEL_COLORS: Readonly<Record<string, string>> = {
  fatal: '\x1b[41m\x1b[97m',
  error: '\x1b[31m',
  warn: '\x1b[33m',
  info: '\x1b[32m',
  debug: '\x1b[36m',
  trace: '\x1b[90m',
};
const DIM = '\x1b[2m';
const RESET = '\x1b[0m';

/** Fields every line has, or that say nothing to a person reading a terminal. */
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

/** One JSON log line as a readable one; a line that is not JSON comes back escaped, as it is. */
export function prettyLine(json: string, color = false): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return escapeControl(json);
  }
  if (typeof entry !== 'object' || entry === null) return escapeControl(json);
  const level = String(entry.level ?? 'info');
  const time = typeof entry.time === 'string' ? clock(entry.time) : '';
  const label = level.toUpperCase().padEnd(5);
  const fields = Object.entries(entry)
    .filter(([name, value]) => !HIDDEN.has(name) && value !== undefined)
    .map(([name, value]) => `${escapeControl(name)}=${name === 'err' ? errorText(value) : fieldText(value)}`);
  const message = escapeControl(String(entry.msg ?? ''));
  const paint = (code: string | undefined, text: string) => (color && code ? `${code}${text}${RESET}` : text);
  return [
    paint(DIM, time),
    paint(LEVEL_COLORS[level], label),
    message,
    fields.length === 0 ? '' : ` ${paint(DIM, fields.join(' '))}`,
  ]
    .filter((part, i) => part !== '' || i === 2)
    .join(' ')
    .trimEnd();
}

/** `14:03:07.412`, local time, from pino's ISO timestamp. */
function clock(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return escapeControl(iso);
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** A field's value: bare when it is a simple word, quoted JSON (escapes included) otherwise. */
function fieldText(value: unknown): string {
  if (typeof value === 'string') return /^[\w.:/@+\-[\]]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return escapeControl(JSON.stringify(value) ?? String(value));
}

/** `TypeError: message (at file:line)`: an error on the line, without its whole stack. */
function errorText(value: unknown): string {
  if (typeof value !== 'object' || value === null) return fieldText(value);
  const error = value as { type?: unknown; message?: unknown; stack?: unknown };
  const frame =
    typeof error.stack === 'string'
      ? /\n\s+at (.+)/.exec(error.stack)?.[1]?.replace(/^.*\((.*)\)$/, '$1')
      : '';
  const text = `${error.type ?? 'Error'}: ${error.message ?? ''}${frame ? ` (at ${frame})` : ''}`;
  return JSON.stringify(text);
}

/** Control characters written as escapes: one entry stays one line, and a terminal obeys no log. */
function escapeControl(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
  return text.replace(/[\x00-\x1f\x7f]/g, (c) =>
    c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}
