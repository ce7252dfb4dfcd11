import { badRequest } from '../core/errors.ts';

/**
 * The deepest a JSON request body may nest arrays and objects: 64 levels, as .NET's
 * System.Text.Json allows by default. A publish body takes two of them (the batch's array, the
 * event's object), which leaves 62 to `data`, far beyond any event we know of; while a 4 MB body
 * nested two million levels deep kept the event loop busy for 1.5 s in `JSON.parse` before it could
 * be refused, and what is parsed must still go through `JSON.stringify` and checks that recurse.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * The most items a JSON request body may hold: 200 000, where an array element counts 1 and an
 * object member 6 (counted by the `[`, `{` and `,` and the `:` of each). `JSON.parse` costs per
 * item, not per byte, and most per object member with a key of its own (each makes a new object
 * shape): on a 2-core machine, 4 MB of `[],` (1.4 million empty arrays) took 250–500 ms, 40 000
 * objects of one distinct key each 67 ms, 4 MB of one string 14 ms. At this limit the worst
 * bodies we found parse in 40–50 ms; a batch of 1 000 events of 20 fields each weighs about
 * 160 000 (its keys repeat, and it parses in 1 ms), and a `data` of 190 000 numbers still fits
 * (send larger arrays as a string, or in several events).
 */
export const MAX_JSON_ITEMS = 200_000;
/** An object member's weight: what a member with a key of its own costs `JSON.parse`, in array elements. */
const MEMBER = 6;

export interface JsonLimits {
  /** Default MAX_JSON_DEPTH. */
  readonly maxDepth?: number;
  /** Default MAX_JSON_ITEMS; `Number.POSITIVE_INFINITY` turns the check off. */
  readonly maxItems?: number;
}

/**
 * Parses a request body's bytes as JSON (UTF-8). Refuses with a 400 problem: `json-too-deep` a
 * document that nests deeper than `maxDepth`, `json-too-many-items` one of more than `maxItems`
 * items (both found by one linear pass over the bytes before anything is parsed, so such a body
 * costs that pass and no recursion), `malformed-json` one that is not UTF-8 or not JSON, with the
 * parser's reason.
 */
export function parseJsonBody(bytes: Uint8Array, limits: JsonLimits = {}): unknown {
  checkJsonShape(bytes, limits);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw badRequest('malformed-json', 'the body is not valid JSON: it is not valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    const reason = error instanceof SyntaxError ? error.message : String(error);
    throw badRequest('malformed-json', `the body is not valid JSON: ${reason}`);
  }
}

const OTHER = 0;
const QUOTE = 1;
const OPEN = 2;
const CLOSE = 3;
const COMMA = 4;
const COLON = 5;
const BACKSLASH = 6;
/** What each byte is to the scan; every byte of a multi-byte UTF-8 character (0x80 and above) is OTHER. */
const KIND = new Uint8Array(256);
KIND[0x22] = QUOTE; // "
KIND[0x5b] = OPEN; // [
KIND[0x7b] = OPEN; // {
KIND[0x5d] = CLOSE; // ]
KIND[0x7d] = CLOSE; // }
KIND[0x2c] = COMMA; // ,
KIND[0x3a] = COLON; // :
KIND[0x5c] = BACKSLASH; // \

/**
 * Throws `json-too-deep` when `bytes`, read as JSON, opens more than `maxDepth` arrays and objects
 * without closing them, and `json-too-many-items` when it holds more than `maxItems` items.
 * Works on the UTF-8 bytes as they are: every byte of a multi-byte character is 0x80 or above, so
 * none is read as a quote, backslash, bracket or separator. Inside a string, a backslash escapes
 * the one byte after it (`\"`, `\\`, the `u` of `\u005B`), and brackets are text. Only the shape
 * is checked here; whether it is JSON at all is `JSON.parse`'s to say.
 */
export function checkJsonShape(bytes: Uint8Array, limits: JsonLimits = {}): void {
  const maxDepth = limits.maxDepth ?? MAX_JSON_DEPTH;
  const maxItems = limits.maxItems ?? MAX_JSON_ITEMS;
  let depth = 0;
  let items = 0;
  const length = bytes.length;
  for (let i = 0; i < length; i++) {
    const kind = KIND[bytes[i] as number];
    if (kind === OTHER) continue;
    if (kind === QUOTE) {
      // To the closing quote, skipping escaped bytes; an unclosed string runs to the end.
      for (i++; i < length; i++) {
        const inside = KIND[bytes[i] as number];
        if (inside === BACKSLASH) i++;
        else if (inside === QUOTE) break;
      }
    } else if (kind === CLOSE) {
      depth--;
    } else {
      items += kind === COLON ? MEMBER - 1 : 1;
      if (items > maxItems) {
        throw badRequest(
          'json-too-many-items',
          `the JSON body holds more than ${maxItems} items (an array element counts 1, an object ` +
            `member ${MEMBER}); the limit is ${maxItems}: send large data as a string, or in several requests`,
          { limit: maxItems },
        );
      }
      if (kind === OPEN && ++depth > maxDepth) {
        throw badRequest(
          'json-too-deep',
          `the JSON body nests arrays and objects more than ${maxDepth} levels deep (at byte ${i}); ` +
            `the limit is ${maxDepth}`,
          { limit: maxDepth },
        );
      }
    }
  }
}
