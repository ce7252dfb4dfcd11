import { BACKENDS, backendNamed } from '../backends/registry.ts';
import type { SourcePattern } from './source.ts';

/**
 * Bridge specs: which Redis channels or NATS subjects feed Herald, and how each message becomes
 * an event. One spec is one `--bridge` argument of `herald serve`:
 *
 * ```
 * redis:merchant:*:progress -> merchants/{1}/progress tenant=merchantId type=type
 * redis:merchant:*:* -> merchants/{1}/{2} tenant={1} type={2}
 * nats:metrics.* -> companies/{companyId}/metrics/{1} tenant=companyId type='metric_updated'
 * ```
 *
 * A value of tenant=, type= or key= is a field name (`companyId`, `meta.org`), a fixed text in
 * quotes (`'acme'`), or, when it contains a brace, a template like the topic's (`{1}`, `org-{1}`).
 * key= names the event's latest-value slot: a page that opens gets the latest event of each key
 * (`snapshot=latest`), so an order's progress or a metric's value shows before its next update.
 * `{source}` is reserved: a top-level field named "source" cannot be put into a template.
 *
 * Parsing is strict and happens once, at start: a spec that could never map a message (a
 * capture the source has no wildcard for, an unclosed `[`, an unknown option) is refused with
 * the reason and the syntax, rather than rejecting every message at run time.
 */

/** The backends that can feed bridges, by their kind (the prefix of a source), in registry order. */
const SOURCES: readonly (readonly [kind: string, pattern: SourcePattern])[] = BACKENDS.flatMap((backend) =>
  backend.bridge === undefined ? [] : [[backend.kind, backend.bridge.pattern] as const],
);

export const BRIDGE_SYNTAX =
  "<source> [-> <topic template>] [tenant=<field>|'<fixed>'|<template>] [type=<field>|'<fixed>'|<template>] [key=<field>|'<fixed>'|<template>] [id=<field>]" +
  `; source: ${SOURCES.map(([kind, pattern]) => `${kind}:<${pattern.noun}>`).join(' or ')}` +
  '; in templates {1}, {2}… are the wildcard captures, {source} the channel or subject, {a.b} a field of the JSON body';

/** `companyId`, `customer.id`: a (dotted) field of the JSON message body. */
export interface FieldRef {
  /** As written, for messages. */
  readonly name: string;
  readonly path: readonly string[];
}

/** Where the tenant, the type or the key of an event comes from. */
export type ValueRule =
  | { readonly from: 'field'; readonly field: FieldRef }
  | { readonly from: 'fixed'; readonly value: string }
  /** `tenant={1}`, `type=po.{2}`: placeholders as in the topic template (seed 002 names the merchant only in the channel). */
  | { readonly from: 'template'; readonly parts: readonly TemplatePart[] };

export type TemplatePart =
  | { readonly kind: 'text'; readonly text: string }
  /** `{1}`: the n-th wildcard capture, from 1. */
  | { readonly kind: 'capture'; readonly index: number }
  /** `{source}`: the whole channel or subject. */
  | { readonly kind: 'source' }
  | { readonly kind: 'field'; readonly field: FieldRef };

export interface BridgeSpec {
  /** The spec in canonical form: what `--bridge` would need to recreate it, and what its identity is hashed from. */
  readonly text: string;
  /** The backend whose pub/sub is the source (`redis`, `nats`): the source's prefix. */
  readonly kind: string;
  /** Redis PSUBSCRIBE glob or NATS subject (with wildcards), without the `redis:`/`nats:` prefix. */
  readonly pattern: string;
  /** `redis:<pattern>` / `nats:<pattern>`: how reports name this bridge. */
  readonly source: string;
  /** How many capturing wildcards the source has: `*` for Redis; `*` and `>` for NATS. */
  readonly wildcards: number;
  /** The topic template; absent: the channel or subject itself is the topic. */
  readonly topic?: readonly TemplatePart[];
  /** Absent: the tenant `""`. */
  readonly tenant?: ValueRule;
  /** Absent: untyped events (SSE `message`). */
  readonly type?: ValueRule;
  /** The latest-value slot (and conflation key) of each event; absent: events without a key. */
  readonly key?: ValueRule;
  /** The field holding a publisher-chosen event id. */
  readonly id?: FieldRef;
  /** Whether mapping reads fields of the body (which must then be a JSON object). */
  readonly readsFields: boolean;
  /** The pattern as an anchored regular expression with a group per wildcard, when its syntax has one (Redis). */
  readonly matcher?: RegExp;
}

/** More wildcards than any sensible channel pattern has; bounds the cost of matching one. */
const MAX_WILDCARDS = 16;
const FIELD = /^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/;

/** Parses one `--bridge` argument. Throws an Error that says what is wrong and shows the syntax. */
export function parseBridgeSpec(input: string): BridgeSpec {
  const fail = (problem: string): never => {
    throw new Error(`bridge spec ${JSON.stringify(input)}: ${problem}\n  syntax: ${BRIDGE_SYNTAX}`);
  };
  const tokens = tokenize(input, fail);
  const first = tokens.shift();
  if (first === undefined) return fail('it is empty');
  if (first.includes('->')) fail(`put spaces around "->"`);

  const colon = first.indexOf(':');
  const kind = first.slice(0, colon);
  const pattern = first.slice(colon + 1);
  const syntax = colon < 0 ? undefined : sourcePattern(kind);
  if (syntax === undefined) {
    return fail(
      `the source ${JSON.stringify(first)} must start with ${SOURCES.map(([known]) => `"${known}:"`).join(' or ')}`,
    );
  }
  if (pattern === '') fail(`the source has no ${syntax.noun}`);
  const { wildcards, matcher } = syntax.compile(pattern, fail);
  if (wildcards > MAX_WILDCARDS) fail(`the source has ${wildcards} wildcards; the limit is ${MAX_WILDCARDS}`);

  let topic: TemplatePart[] | undefined;
  if (tokens[0] === '->') {
    tokens.shift();
    const template = tokens.shift();
    if (template === undefined || /^(tenant|type|key|id)=/.test(template)) {
      fail('"->" must be followed by a topic template, e.g. merchants/{1}/progress');
    }
    topic = parseTemplate(unquote(template as string), wildcards, fail);
  }

  let tenant: ValueRule | undefined;
  let type: ValueRule | undefined;
  let key: ValueRule | undefined;
  let id: FieldRef | undefined;
  const seen = new Set<string>();
  for (const token of tokens) {
    const equals = token.indexOf('=');
    if (equals <= 0) {
      fail(
        token === '->'
          ? '"->" comes once, right after the source'
          : `unexpected ${JSON.stringify(token)}; after the source and topic come only tenant=, type=, key= and id=`,
      );
    }
    const name = token.slice(0, equals);
    const value = token.slice(equals + 1);
    if (name !== 'tenant' && name !== 'type' && name !== 'key' && name !== 'id') {
      fail(`unknown option "${name}"; the options are tenant=, type=, key= and id=`);
    }
    if (seen.has(name)) fail(`${name}= is given twice`);
    seen.add(name);
    if (value === '') {
      fail(
        `${name}= needs a field name${name === 'id' ? '' : `, a quoted value (${name}='x') or a template (${name}={1})`}`,
      );
    }
    const quoted = isQuoted(value);
    if (name === 'id') {
      if (quoted)
        fail('id= takes a field name: a fixed id would make every event after the first a duplicate');
      id = parseField(value, 'id=', fail);
    } else if (quoted) {
      const fixed = unquote(value);
      if (name === 'type' && fixed === '') fail("type='' is empty; leave type= out for untyped events");
      if (name === 'key' && fixed === '') fail("key='' is empty; leave key= out for events without a key");
      if (name === 'type' && fixed.startsWith('herald.'))
        fail(`type '${fixed}': "herald." types are Herald's own`);
      if (name === 'tenant' && fixed === '*') fail("tenant '*' is reserved for watching every tenant");
      const rule: ValueRule = { from: 'fixed', value: fixed };
      if (name === 'tenant') tenant = rule;
      else if (name === 'type') type = rule;
      else key = rule;
    } else {
      const rule: ValueRule = /[{}]/.test(value)
        ? { from: 'template', parts: parseTemplate(value, wildcards, fail) }
        : { from: 'field', field: parseField(value, `${name}=`, fail) };
      if (name === 'tenant') tenant = rule;
      else if (name === 'type') type = rule;
      else key = rule;
    }
  }

  const hasField = (parts: readonly TemplatePart[] | undefined) =>
    parts?.some((part) => part.kind === 'field') === true;
  const ruleReads = (rule: ValueRule | undefined) =>
    rule?.from === 'field' || (rule?.from === 'template' && hasField(rule.parts));
  const readsFields =
    hasField(topic) || ruleReads(tenant) || ruleReads(type) || ruleReads(key) || id !== undefined;
  const spec: { -readonly [K in keyof BridgeSpec]: BridgeSpec[K] } = {
    text: '',
    kind,
    pattern,
    source: `${kind}:${pattern}`,
    wildcards,
    readsFields,
  };
  if (topic !== undefined) spec.topic = topic;
  if (tenant !== undefined) spec.tenant = tenant;
  if (type !== undefined) spec.type = type;
  if (key !== undefined) spec.key = key;
  if (id !== undefined) spec.id = id;
  if (matcher !== undefined) spec.matcher = matcher;
  spec.text = formatBridgeSpec(spec);
  return spec;
}

/** The canonical text of a spec: single spaces, every option in a fixed order. */
export function formatBridgeSpec(spec: BridgeSpec): string {
  let text = spec.source;
  if (spec.topic !== undefined) text += ` -> ${formatTemplate(spec.topic)}`;
  if (spec.tenant !== undefined) text += ` tenant=${formatRule(spec.tenant)}`;
  if (spec.type !== undefined) text += ` type=${formatRule(spec.type)}`;
  if (spec.key !== undefined) text += ` key=${formatRule(spec.key)}`;
  if (spec.id !== undefined) text += ` id=${spec.id.name}`;
  return text;
}

function tokenize(input: string, fail: (problem: string) => never): string[] {
  const tokens: string[] = [];
  let current = '';
  let quote: string | undefined;
  let inToken = false;
  for (const char of input) {
    if (quote !== undefined) {
      current += char;
      if (char === quote) quote = undefined;
    } else if (/\s/.test(char)) {
      if (inToken) tokens.push(current);
      current = '';
      inToken = false;
    } else {
      current += char;
      inToken = true;
      if (char === "'" || char === '"') quote = char;
    }
  }
  if (quote !== undefined) fail(`a ${quote} is not closed`);
  if (inToken) tokens.push(current);
  return tokens;
}

function isQuoted(value: string): boolean {
  const quote = value[0];
  return (quote === "'" || quote === '"') && value.length >= 2 && value.endsWith(quote);
}

function unquote(value: string): string {
  return isQuoted(value) ? value.slice(1, -1) : value;
}

function parseField(text: string, where: string, fail: (problem: string) => never): FieldRef {
  if (!FIELD.test(text)) {
    fail(
      `${where} ${JSON.stringify(text)} is not a field name: use letters, digits, _ - $ and dots for nested fields (a.b), or quotes for a fixed value`,
    );
  }
  return { name: text, path: text.split('.') };
}

function parseTemplate(text: string, wildcards: number, fail: (problem: string) => never): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let literal = '';
  let i = 0;
  while (i < text.length) {
    const char = text[i] as string;
    if (char === '{' && text[i + 1] === '{') {
      literal += '{';
      i += 2;
    } else if (char === '}' && text[i + 1] === '}') {
      literal += '}';
      i += 2;
    } else if (char === '}') {
      fail(`the topic template has a "}" without "{" (write "}}" for a literal one)`);
    } else if (char === '{') {
      const end = text.indexOf('}', i);
      if (end < 0) fail('the topic template has a "{" without "}" (write "{{" for a literal one)');
      const name = text.slice(i + 1, end);
      if (literal !== '') parts.push({ kind: 'text', text: literal });
      literal = '';
      if (/^\d+$/.test(name)) {
        const index = Number(name);
        if (index < 1 || index > wildcards) {
          fail(
            wildcards === 0
              ? `{${name}} refers to a wildcard, but the source has none`
              : `{${name}} refers to no wildcard: the source has ${wildcards}, so {1}${wildcards > 1 ? `…{${wildcards}}` : ''}`,
          );
        }
        parts.push({ kind: 'capture', index });
      } else if (name === 'source') {
        parts.push({ kind: 'source' });
      } else {
        parts.push({ kind: 'field', field: parseField(name, `{${name}}:`, fail) });
      }
      i = end + 1;
    } else {
      literal += char;
      i++;
    }
  }
  if (literal !== '') parts.push({ kind: 'text', text: literal });
  if (parts.length === 0) fail('the topic template is empty');
  return parts;
}

function formatTemplate(parts: readonly TemplatePart[]): string {
  let text = '';
  for (const part of parts) {
    if (part.kind === 'text') text += part.text.replaceAll('{', '{{').replaceAll('}', '}}');
    else if (part.kind === 'capture') text += `{${part.index}}`;
    else if (part.kind === 'source') text += '{source}';
    else text += `{${part.field.name}}`;
  }
  if (!/\s|^['"]/.test(text)) return text;
  return text.includes("'") ? `"${text}"` : `'${text}'`;
}

function formatRule(rule: ValueRule): string {
  if (rule.from === 'field') return rule.field.name;
  if (rule.from === 'template') return formatTemplate(rule.parts);
  return rule.value.includes("'") ? `"${rule.value}"` : `'${rule.value}'`;
}

export function sourcePattern(kind: string): SourcePattern | undefined {
  return backendNamed(kind)?.bridge?.pattern;
}
