/**
 * RFC 6570 URI Templates, used the other way round: subscribers select topics with a template
 * (the Mercure convention) and we ask whether *some* assignment of its variables expands to a
 * given topic.
 *
 * Templates come from untrusted subscribers and a match runs on the hub's only event loop, so its
 * cost must not depend on the template's shape. A backtracking RegExp can't promise that: it tries
 * the ways of splitting the topic between neighbouring expressions one after another, and
 * `{x:9999}{x:9999}{x:9999}{x:9999}{x:9999}{x:9999}` took 3 s to reject 60 `a`s and a `!`.
 * Instead, a template compiles into a list of steps, one per literal and per expression, and a
 * match walks them in order carrying the *set* of topic positions the template may have reached so
 * far, as an NFA simulation does: every split is followed at once, and none twice. Each step
 * costs a few passes over the topic, whatever its text and prefix lengths, so a match costs
 * O(topic length × number of variables), and MAX_VARIABLES bounds the second factor.
 *
 * It stays one file, past the ~400 lines a module here keeps to: it is one idea, RFC 6570's
 * grammar, whose parser, steps and position sets are written for each other and read together.
 */
import { HeraldError } from './errors.ts';

export interface UriTemplate {
  readonly source: string;
  /** Literal text before the first expression ('' if the template starts with one; the whole source if it has none). */
  readonly prefix: string;
  /** Literal text after the last expression ('' if the template ends with one or has none). */
  readonly suffix: string;
  /** Variables over all its expressions (`{a,b}{c}`: 3). */
  readonly variables: number;
  /** The fewest UTF-16 code units a topic it matches can have: those of its literals. */
  readonly minLength: number;
  /**
   * Its fully literal segments (text between two `/`, or an end, without any expression) whose
   * place in every topic it matches is fixed: counted from the start when no expression before
   * them can expand to a `/`, from the end when none after them can (only `{+x}`, `{#x}` and
   * `{/x}` can). `dealers/{id}/scores` has `[0, 'dealers']` and `[2, 'scores']` from the start,
   * `[0, 'scores']` and `[2, 'dealers']` from the end. An index keys templates on them.
   */
  readonly segments: TemplateSegments;
  /**
   * About how many passes over the topic one match takes (a few per variable, one or two per
   * literal): the work of a match is `weight × topic length`, which callers count to bound it.
   */
  readonly weight: number;
  /** True when some assignment of the variables expands to exactly `topic`. */
  test(topic: string): boolean;
}

/** `[segment number, its text]`, each list in increasing segment number. */
export interface TemplateSegments {
  readonly fromStart: readonly (readonly [number, string])[];
  readonly fromEnd: readonly (readonly [number, string])[];
}

const MAX_TEMPLATE_LENGTH = 4096;
/**
 * What bounds the cost of a match besides the topic's length: each variable costs at most eight
 * passes over the topic, and each literal between expressions two. With 16 variables, the worst
 * templates we could build took about 0.5 ms on a 1024-character topic (2-core machine, see the
 * hostile-template tests); real templates use a handful (the seeds' apps and Mercure's examples
 * one or two, RFC 6570's longest example five). Fewer variables per template is the cheapest
 * bound there is on what one template costs each topic it is tested against.
 */
export const MAX_VARIABLES = 16;

// §1.5. `allow` below lists what an operator keeps unencoded besides the unreserved set.
const RESERVED = ":/?#[]@!$&'()*+,;=";

interface Operator {
  /** Emitted before the first defined variable of the expression (Appendix A). */
  readonly first: string;
  /** Emitted between defined variables, and between the members of an exploded value. */
  readonly sep: string;
  /** `;`, `?` and `&` expand to `name=value` pairs (§3.2.7–3.2.9). */
  readonly named: boolean;
  /** `;` drops the `=` after an empty value, `?` and `&` keep it (Appendix A `ifemp`). */
  readonly keepsEmptyEquals: boolean;
  /** `+` and `#` leave reserved characters unencoded (§3.2.3, §3.2.4). */
  readonly allow: string;
}

const op = (first: string, sep: string, named: boolean, keepsEmptyEquals: boolean, allow: string) => ({
  first,
  sep,
  named,
  keepsEmptyEquals,
  allow,
});

const SIMPLE = op('', ',', false, false, '');
const OPERATORS: Readonly<Record<string, Operator>> = {
  '+': op('', ',', false, false, RESERVED),
  '#': op('#', ',', false, false, RESERVED),
  '.': op('.', '.', false, false, ''),
  '/': op('/', '/', false, false, ''),
  ';': op(';', ';', true, false, ''),
  '?': op('?', '&', true, true, ''),
  '&': op('&', '&', true, true, ''),
};
/** §2.2: reserved for future extensions, so a template using them can't be understood today. */
const RESERVED_OPERATORS = '=,!@|';

interface VarSpec {
  readonly name: string;
  /** Prefix modifier `:N` (§2.4.1). */
  readonly maxLength: number | undefined;
  /** Explode modifier `*` (§2.4.2). */
  readonly explode: boolean;
}

/**
 * One match in progress: the topic as code points (RFC 6570 counts characters, §2.4.1, and a
 * template's literals and characters above U+FFFF are matched whole), what the steps need to
 * know about it, and scratch space.
 */
interface Topic {
  readonly length: number;
  readonly chars: Int32Array;
  /** 1 where a pct-encoded triplet (`%` and two hex digits) starts. */
  readonly pct: Uint8Array;
  /** Where the run of pct-encoded UTF-8 continuation octets (`%80`–`%BF`) starting at a position ends. */
  readonly continuationEnd: Int32Array;
  /** For prefix-limited values: the fewest characters with which a position was reached. */
  readonly fewest: Int32Array;
  /** Position sets no step is using. */
  readonly spare: Positions[];
}

/** Positions 0 to topic.length a match may have reached, as flags. */
type Positions = Uint8Array;

/**
 * One literal or expression: turns the set of positions it may start at into the set of
 * positions it may end at, in place.
 */
type Step = (at: Positions, topic: Topic) => void;

/** Which ASCII characters a value holds as they are: the unreserved ones and what the operator allows. */
type CharClass = Uint8Array;

const isUnreserved = (c: string) => /^[A-Za-z0-9\-._~]$/.test(c);

function charClass(extra: string): CharClass {
  const holds = new Uint8Array(128);
  for (let c = 0; c < 128; c++) {
    const char = String.fromCharCode(c);
    // `%` only ever starts a triplet, so a value is read one way only.
    if (char !== '%' && (isUnreserved(char) || extra.includes(char))) holds[c] = 1;
  }
  return holds;
}

const isHexDigit = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
/** `8`, `9`, `A`, `B`, `a`, `b`: the first hex digit of a UTF-8 continuation octet. */
const isContinuationDigit = (c: number) =>
  c === 56 || c === 57 || c === 65 || c === 66 || c === 97 || c === 98;

/**
 * The last topic read, kept: a topic is tested against many templates in a row (every candidate
 * of the index, every selector of a stream), and reading it costs as much as a short template.
 * Its scratch space is reused safely, as a match never runs inside another.
 */
let lastText: string | undefined;
let lastTopic: Topic | undefined;

function readTopic(text: string): Topic {
  if (text === lastText && lastTopic !== undefined) return lastTopic;
  lastTopic = parseTopic(text);
  lastText = text;
  return lastTopic;
}

function parseTopic(text: string): Topic {
  const chars = new Int32Array(text.length);
  let length = 0;
  for (let i = 0; i < text.length; length++) {
    const c = text.codePointAt(i) as number;
    chars[length] = c;
    i += c > 0xffff ? 2 : 1;
  }
  const pct = new Uint8Array(length + 1);
  for (let i = 0; i + 2 < length; i++) {
    if (chars[i] === 37 && isHexDigit(chars[i + 1] as number) && isHexDigit(chars[i + 2] as number)) {
      pct[i] = 1;
    }
  }
  const continuationEnd = new Int32Array(length + 1);
  for (let i = length; i >= 0; i--) {
    continuationEnd[i] =
      pct[i] === 1 && isContinuationDigit(chars[i + 1] as number) ? (continuationEnd[i + 3] as number) : i;
  }
  return { length, chars, pct, continuationEnd, fewest: new Int32Array(length + 1), spare: [] };
}

/** A position set for a step's own use, empty or a copy of `of`; give it back with `release`. */
function borrow(topic: Topic, of?: Positions): Positions {
  const set = topic.spare.pop() ?? new Uint8Array(topic.length + 1);
  if (of === undefined) set.fill(0);
  else set.set(of);
  return set;
}

const release = (topic: Topic, set: Positions) => topic.spare.push(set);

/** Adds `b` to `a`; says whether that added anything. */
function addTo(a: Positions, b: Positions): boolean {
  let added = false;
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 1 && a[i] === 0) {
      a[i] = 1;
      added = true;
    }
  }
  return added;
}

/**
 * Where the value octet at `i` ends, or 0 if none starts there: one character, or one octet
 * pct-encoded (§3.2.1: what the operator doesn't allow is pct-encoded).
 */
function octetEnd(topic: Topic, holds: CharClass, i: number): number {
  const c = topic.chars[i] as number;
  // Code points above U+007F are accepted in every expansion on purpose: topics are often IRIs
  // carrying raw Unicode rather than its pct-encoding.
  if (c > 0x7f || holds[c] === 1) return i + 1;
  return topic.pct[i] === 1 ? i + 3 : 0;
}

/**
 * Where the value *character* at `i` ends, or 0 if none starts there. §2.4.1 counts characters,
 * not octets, so a pct-encoded UTF-8 sequence (a non-ASCII triplet and all the continuation
 * triplets after it) counts once; taking all of them keeps the count unambiguous.
 */
function charEnd(topic: Topic, holds: CharClass, i: number): number {
  const c = topic.chars[i] as number;
  if (c > 0x7f || holds[c] === 1) return i + 1;
  if (topic.pct[i] === 0) return 0;
  return (topic.chars[i + 1] as number) <= 55 /* `7` */ ? i + 3 : (topic.continuationEnd[i + 3] as number);
}

const invalid = (detail: string) => new HeraldError(400, 'invalid-template', detail);

/** Operators whose expansion may contain `/`: `+` and `#` keep it unencoded, `/` emits it. */
const SLASH_OPERATORS = '+#/';
const EXPRESSION = 0;
const SPANS_SLASHES = 1;
/** A template as literal text and expressions, for working out its fixed segments. */
type Atom = string | typeof EXPRESSION | typeof SPANS_SLASHES;

/**
 * The fully literal segments of `atoms` from its start, up to the first expression that may
 * expand to a `/` (after it, no segment number is certain).
 */
function fixedSegments(atoms: readonly Atom[]): [number, string][] {
  const found: [number, string][] = [];
  let segment = 0;
  let text = '';
  let literalOnly = true;
  for (const atom of atoms) {
    if (atom === SPANS_SLASHES) return found;
    if (atom === EXPRESSION) {
      literalOnly = false;
      continue;
    }
    let from = 0;
    for (let slash = atom.indexOf('/'); slash !== -1; slash = atom.indexOf('/', from)) {
      text += atom.slice(from, slash);
      if (literalOnly) found.push([segment, text]);
      segment++;
      text = '';
      literalOnly = true;
      from = slash + 1;
    }
    text += atom.slice(from);
  }
  if (literalOnly) found.push([segment, text]);
  return found;
}

/** `text` backwards, by UTF-16 code unit: reversed twice, it is itself again. */
const reverse = (text: string) => {
  let reversed = '';
  for (let i = text.length - 1; i >= 0; i--) reversed += text[i];
  return reversed;
};

/** Throws HeraldError(400, 'invalid-template', detail) for a malformed template, with a detail a person can act on, e.g. "topic template `a/{b` has an unclosed `{` at position 2". */
export function compileUriTemplate(source: string): UriTemplate {
  if (source.length > MAX_TEMPLATE_LENGTH) {
    throw invalid(
      `topic template is ${source.length} characters long; the maximum is ${MAX_TEMPLATE_LENGTH}`,
    );
  }
  // Odd entries are `{...}` expressions, even entries the literal text around them.
  const parts = source.split(/(\{[^{}]*\})/);
  const steps: Step[] = [];
  let variables = 0;
  let position = 0;
  const atoms: Atom[] = [];
  let literals = 0;
  let minLength = 0;
  parts.forEach((part, index) => {
    if (index % 2 === 1) {
      steps.push(compileExpression(source, position, part.slice(1, -1)));
      variables += part.split(',').length;
      atoms.push(SLASH_OPERATORS.includes(part.charAt(1)) ? SPANS_SLASHES : EXPRESSION);
    } else {
      const brace = part.search(/[{}]/);
      if (brace !== -1) {
        const at = position + brace;
        throw invalid(
          part[brace] === '{'
            ? `topic template \`${source}\` has an unclosed \`{\` at position ${at}`
            : `topic template \`${source}\` has a \`}\` without a matching \`{\` at position ${at}`,
        );
      }
      // §3.1: literals are copied as they are, so they match themselves only.
      if (part !== '') {
        steps.push(literal(part));
        atoms.push(part);
        literals++;
        minLength += part.length;
      }
    }
    position += part.length;
  });
  if (variables > MAX_VARIABLES) {
    throw invalid(
      `topic template \`${source}\` has ${variables} variables; the maximum is ${MAX_VARIABLES}, ` +
        'so subscribe with several smaller templates instead',
    );
  }
  return {
    source,
    prefix: parts[0] ?? '',
    suffix: parts.length > 1 ? (parts.at(-1) ?? '') : '',
    variables,
    minLength,
    segments: {
      fromStart: fixedSegments(atoms),
      fromEnd: fixedSegments(
        atoms.map((atom) => (typeof atom === 'string' ? reverse(atom) : atom)).reverse(),
      ).map(([n, text]) => [n, reverse(text)] as const),
    },
    weight: 8 + literals * 2 + variables * 8,
    test(text: string) {
      const topic = readTopic(text);
      const at = new Uint8Array(topic.length + 1);
      at[0] = 1;
      for (const step of steps) {
        step(at, topic);
        if (!at.includes(1)) return false;
      }
      return at[topic.length] === 1;
    },
  };
}

/** `text` itself (§3.1: literals are copied as they are). */
function literal(text: string): Step {
  const expected = Int32Array.from(text, (c) => c.codePointAt(0) as number);
  const length = expected.length;
  if (length === 1) {
    const only = expected[0];
    return (at, { chars, length: n }) => {
      // Backwards, so that each start is read before anything is written over it.
      for (let end = n; end >= 1; end--) at[end] = at[end - 1] === 1 && chars[end - 1] === only ? 1 : 0;
      at[0] = 0;
    };
  }
  // Knuth–Morris–Pratt, so that finding `text` costs one pass over the topic however long it is:
  // `border[k]` is the length of the longest proper prefix of `text` that ends its first k + 1 characters.
  const border = new Int32Array(length);
  for (let k = 1, b = 0; k < length; k++) {
    while (b > 0 && expected[k] !== expected[b]) b = border[b - 1] as number;
    if (expected[k] === expected[b]) b++;
    border[k] = b;
  }
  return (at, topic) => {
    const { chars, length: n } = topic;
    const endsHere = borrow(topic);
    for (let i = 0, k = 0; i < n; i++) {
      const c = chars[i];
      while (k > 0 && c !== expected[k]) k = border[k - 1] as number;
      if (c === expected[k]) k++;
      if (k === length) {
        endsHere[i + 1] = 1;
        k = border[k - 1] as number;
      }
    }
    for (let end = n; end >= length; end--) at[end] = endsHere[end] === 1 && at[end - length] === 1 ? 1 : 0;
    at.fill(0, 0, Math.min(length, n + 1));
    release(topic, endsHere);
  };
}

/** `step`, or nothing at all. */
const optional =
  (step: Step): Step =>
  (at, topic) => {
    const before = borrow(topic, at);
    step(at, topic);
    addTo(at, before);
    release(topic, before);
  };

const sequence =
  (...steps: Step[]): Step =>
  (at, topic) => {
    for (const step of steps) step(at, topic);
  };

/**
 * Any number of value octets, or between `min` and `max` value characters when `max` is set
 * (a prefix modifier). The octet or character starting at a position is determined by the topic
 * alone, so for each position it is enough to know the fewest characters any path took to it.
 */
function value(extra: string, max?: number, min: 0 | 1 = 0): Step {
  const holds = charClass(extra);
  if (max === undefined) {
    return (at, topic) => {
      for (let i = 0; i < topic.length; i++) {
        if (at[i] === 0) continue;
        const end = octetEnd(topic, holds, i);
        if (end !== 0) at[end] = 1;
      }
    };
  }
  return (at, topic) => {
    const fewest = topic.fewest.fill(max + 1);
    for (let i = 0; i <= topic.length; i++) {
      // Ends are always ahead, so `at[i]` still says whether the value may start here.
      const start = at[i] === 1;
      const count = start && min === 0 ? 0 : (fewest[i] as number);
      at[i] = count <= max ? 1 : 0;
      const next = start ? 1 : count + 1;
      if (next > max || i === topic.length) continue;
      const end = charEnd(topic, holds, i);
      if (end !== 0 && next < (fewest[end] as number)) fewest[end] = next;
    }
  };
}

function compileExpression(source: string, at: number, body: string): Step {
  const where = `\`{${body}}\` at position ${at}`;
  if (body === '') throw invalid(`topic template \`${source}\` has an empty expression ${where}`);
  const opChar = body.charAt(0);
  if (RESERVED_OPERATORS.includes(opChar)) {
    throw invalid(
      `topic template \`${source}\` uses the reserved operator \`${opChar}\` in ${where}; ` +
        'the supported operators are + # . / ; ? &',
    );
  }
  const o = OPERATORS[opChar] ?? SIMPLE;
  const list = o === SIMPLE ? body : body.slice(1);
  const vars = list.split(',').map((spec) => parseVarSpec(source, where, spec));
  return o.named ? namedExpression(o, vars) : unnamedExpression(o, vars);
}

// §2.3: varname = varchar *( ["."] varchar ), varchar = ALPHA / DIGIT / "_" / pct-encoded
const VARNAME = /^(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})+(?:\.(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})+)*$/;
// §2.4.1: max-length = %x31-39 0*3DIGIT, i.e. 1 to 9999
const MAX_LENGTH = /^[1-9][0-9]{0,3}$/;

function parseVarSpec(source: string, where: string, spec: string): VarSpec {
  const colon = spec.indexOf(':');
  const explode = colon === -1 && spec.endsWith('*');
  const name = colon !== -1 ? spec.slice(0, colon) : explode ? spec.slice(0, -1) : spec;
  if (!VARNAME.test(name)) {
    const problem = name === '' ? 'is missing a variable name' : `has an invalid variable name \`${name}\``;
    throw invalid(
      `topic template \`${source}\` ${problem} in ${where}; ` +
        'a name is letters, digits, `_` and pct-encoded triplets, optionally joined by single dots',
    );
  }
  if (colon === -1) return { name, maxLength: undefined, explode };
  const length = spec.slice(colon + 1);
  if (!MAX_LENGTH.test(length)) {
    throw invalid(
      `topic template \`${source}\` has an invalid prefix length \`${length}\` in ${where}; ` +
        'it must be a whole number from 1 to 9999',
    );
  }
  return { name, maxLength: Number(length), explode: false };
}

/** The operator's `first` and the expression's text after it, or nothing when no variable is defined (without a `first`, `rest` already matches the empty text). */
const withFirst = (o: Operator, rest: Step): Step =>
  o.first === '' ? rest : optional(sequence(literal(o.first), rest));

/**
 * `{x}`, `{+x}`, `{#x}`, `{.x}`, `{/x}`. Variables leave no names in the output, so nothing tells
 * which variable produced which field; rather than try every ordered subset of them, the
 * expression matches a run of fields, each checked against the loosest variable.
 */
function unnamedExpression(o: Operator, vars: readonly VarSpec[]): Step {
  const limits = vars.map((v) => v.maxLength);
  const bounded = limits.every((n): n is number => n !== undefined);
  // §3.2.1: a list or associative array joins its members with `,`; exploded, with the
  // operator's separator, and pairs as `key=value`. Prefix modifiers only apply to strings.
  const extra = bounded
    ? o.allow
    : o.allow +
      (vars.some((v) => !v.explode && v.maxLength === undefined) ? ',' : '') +
      (vars.some((v) => v.explode) ? `=${o.sep}` : '');
  if (vars.length === 1 || isUnreserved(o.sep) || extra.includes(o.sep)) {
    // One field, or fields whose separator is a value character too: a single run, of which
    // only the total length is known.
    return withFirst(o, value(extra, bounded ? sum(limits) + vars.length - 1 : undefined));
  }
  // Fields told apart by the separator (`{/x,y}`, `{x:3,y:5}`), each as loose as the loosest
  // variable: the positions after 1, 2, … fields, up to one per variable.
  const field = value(extra, bounded ? Math.max(...limits) : undefined);
  const sep = literal(o.sep);
  return withFirst(o, (at, topic) => {
    field(at, topic);
    const reached = borrow(topic, at);
    for (let count = 1; count < vars.length; count++) {
      sep(at, topic);
      field(at, topic);
      // Once a field ends nowhere new, the next ones start where earlier ones did, so end there too.
      if (!addTo(reached, at)) break;
    }
    at.set(reached);
    release(topic, reached);
  });
}

const sum = (numbers: readonly number[]) => numbers.reduce((a, b) => a + b, 0);

/** `{;x}`, `{?x}`, `{&x}`: each defined variable contributes a `name=value` pair, in template order. */
function namedExpression(o: Operator, vars: readonly VarSpec[]): Step {
  if (vars.some((v) => v.explode) || new Set(vars.map((v) => v.name)).size < vars.length) {
    // An exploded associative array emits pairs with arbitrary keys (§3.2.1), and repeated
    // names can't tie a pair to one variable either, so accept any sequence of pairs.
    return withFirst(o, value(`,=${o.sep}`));
  }
  /** `name=value`, after `lead`. */
  const pair = (v: VarSpec, lead: string) => {
    const text = v.maxLength === undefined ? value(',') : value('', v.maxLength, o.keepsEmptyEquals ? 0 : 1);
    return o.keepsEmptyEquals
      ? sequence(literal(`${lead}${v.name}=`), text)
      : sequence(literal(lead + v.name), optional(sequence(literal('='), text)));
  };
  // Appendix A: `first` goes before the first *defined* variable and `sep` before the others;
  // undefined variables leave no trace.
  if (o.first === o.sep) return sequence(...vars.map((v) => optional(pair(v, o.sep))));
  const pairs = vars.map((v) => pair(v, ''));
  const sep = literal(o.sep);
  // Any non-empty ordered subset of the pairs: pair k comes right after `first`, or after `sep`
  // and a subset of the pairs before it.
  const first = literal(o.first);
  return optional((at, topic) => {
    const afterFirst = borrow(topic, at);
    first(afterFirst, topic);
    at.fill(0);
    const start = borrow(topic);
    for (const pair of pairs) {
      start.set(at);
      sep(start, topic);
      addTo(start, afterFirst);
      pair(start, topic);
      addTo(at, start);
    }
    release(topic, afterFirst);
    release(topic, start);
  });
}
