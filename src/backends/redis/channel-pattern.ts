import type { SourcePattern } from '../../bridges/source.ts';

/** Redis channel patterns, as `redis:` bridges take them (PSUBSCRIBE's glob). */
export const channelPattern: SourcePattern = {
  noun: 'channel pattern',
  compile(pattern, fail) {
    const glob = compileGlob(pattern, fail);
    return { wildcards: glob.stars, matcher: glob.regex };
  },
};

/**
 * A Redis glob (the syntax of PSUBSCRIBE: `*`, `?`, `[abc]`, `[^a-z]`, `\x`) as an anchored
 * regular expression with one lazy group per `*`. Redis has already matched the channel when a
 * message arrives; this only finds what each `*` covered.
 */
export function compileGlob(
  pattern: string,
  fail: (problem: string) => never,
): { regex: RegExp; stars: number } {
  if (/\s/.test(pattern)) fail('the channel pattern contains a space');
  let source = '';
  let stars = 0;
  let i = 0;
  while (i < pattern.length) {
    const char = pattern[i] as string;
    if (char === '*') {
      source += '([^]*?)';
      stars++;
      i++;
    } else if (char === '?') {
      source += '[^]';
      i++;
    } else if (char === '\\') {
      const next = pattern[i + 1];
      if (next === undefined) fail('the channel pattern ends with a lone "\\"');
      source += escapeRegExp(next as string);
      i += 2;
    } else if (char === '[') {
      let j = i + 1;
      let negate = false;
      if (pattern[j] === '^') {
        negate = true;
        j++;
      }
      let set = '';
      while (j < pattern.length && pattern[j] !== ']') {
        let from = pattern[j] as string;
        if (from === '\\' && j + 1 < pattern.length) from = pattern[++j] as string;
        if (pattern[j + 1] === '-' && j + 2 < pattern.length && pattern[j + 2] !== ']') {
          let to = pattern[j + 2] as string;
          j += 2;
          if (to === '\\' && j + 1 < pattern.length) to = pattern[++j] as string;
          // Redis accepts a reversed range ([z-a]) as the same range.
          const [low, high] = from <= to ? [from, to] : [to, from];
          set += `${escapeClass(low)}-${escapeClass(high)}`;
        } else {
          set += escapeClass(from);
        }
        j++;
      }
      if (j >= pattern.length) fail('the channel pattern has a "[" without "]"');
      if (set === '') fail('the channel pattern has an empty "[]"');
      source += `[${negate ? '^' : ''}${set}]`;
      i = j + 1;
    } else {
      source += escapeRegExp(char);
      i++;
    }
  }
  return { regex: new RegExp(`^${source}$`), stars };
}

function escapeRegExp(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

function escapeClass(char: string): string {
  return /[\\\]^[-]/.test(char) ? `\\${char}` : char;
}
