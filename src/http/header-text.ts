/**
 * Header values are bytes. Node (and the fetch `Headers` of web handlers) hand them to us one
 * byte per character (latin1), and refuse to send a character above U+00FF. Browsers send
 * `Last-Event-ID` as UTF-8 (WHATWG HTML §9.2: the last event ID string, UTF-8 encoded), so an id
 * such as `rev-€` arrives as mojibake and could not be sent back at all. These two functions move
 * between that byte form and the text the id really is.
 */

const HIGH_BYTE = /[\u0080-\u00ff]/;
const decoder = new TextDecoder('utf-8', { fatal: true });

/** The text of a header value received as bytes: UTF-8 when it is valid UTF-8, else as it came. */
export function headerText(value: string | null | undefined): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (!HIGH_BYTE.test(value)) return value;
  try {
    return decoder.decode(Buffer.from(value, 'latin1'));
  } catch {
    return value;
  }
}

/** Text as a header value: its UTF-8 bytes, one per character, which every adapter writes as they are. */
export function headerBytes(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the check is for anything past ASCII
  return /^[\u0000-\u007f]*$/.test(text) ? text : Buffer.from(text, 'utf8').toString('latin1');
}
