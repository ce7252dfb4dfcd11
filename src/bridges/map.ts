import type { PublishInput } from '../core/event.ts';
import { type BridgeSpec, type FieldRef, sourcePattern, type TemplatePart, type ValueRule } from './spec.ts';

/* How one message of a bridge's source becomes the input of `herald.publish`, by its spec. */

/**
 * What each wildcard of the source matched in `channel` (Redis: each `*`; NATS: each `*` token,
 * and the rest of the subject for `>`), or undefined when the channel does not match. A source
 * whose patterns compile to a regular expression has it in the spec; another matches itself.
 */
export function captures(spec: BridgeSpec, channel: string): string[] | undefined {
  if (spec.matcher !== undefined) {
    const match = spec.matcher.exec(channel);
    return match === null ? undefined : match.slice(1);
  }
  return sourcePattern(spec.kind)?.captures?.(spec.pattern, channel);
}

/**
 * Turns one message of the source into the input of `herald.publish`: the fields of the `bridge`
 * column of `EVENT_FIELDS` (core/protocol/fields.ts). `data` is the body parsed
 * as JSON when it parses, else the body as text. Throws an Error saying why when the mapping
 * cannot be applied: a field it names is missing, empty or not a string or number, or the body
 * is not a JSON object although the mapping reads fields of it.
 */
export function mapMessage(spec: BridgeSpec, channel: string, body: string): PublishInput {
  let data: unknown = body;
  let json = false;
  try {
    data = JSON.parse(body);
    json = true;
  } catch {
    // Not JSON: the event carries the text as it came.
  }
  let object: Record<string, unknown> | undefined;
  if (spec.readsFields) {
    if (!json) {
      throw new Error(`the message is not JSON (${excerpt(body)}), but the mapping reads fields of it`);
    }
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      throw new Error(
        `the message is ${data === null ? 'JSON null' : `a JSON ${Array.isArray(data) ? 'array' : typeof data}`}, not an object, but the mapping reads fields of it`,
      );
    }
    object = data as Record<string, unknown>;
  }

  let found: string[] | undefined;
  const context: RenderContext = {
    channel,
    object,
    captures() {
      found ??= captures(spec, channel);
      if (found === undefined) {
        throw new Error(`channel ${JSON.stringify(channel)} does not match ${JSON.stringify(spec.pattern)}`);
      }
      return found;
    },
  };
  const input: PublishInput = {
    topic: spec.topic === undefined ? channel : render(spec.topic, context, true),
    data,
    tenant: '',
  };
  if (spec.tenant !== undefined) input.tenant = apply(spec.tenant, context);
  if (spec.type !== undefined) input.type = apply(spec.type, context);
  if (spec.key !== undefined) input.key = apply(spec.key, context);
  if (spec.id !== undefined) input.id = read(object, spec.id);
  return input;
}

interface RenderContext {
  readonly channel: string;
  readonly object: Record<string, unknown> | undefined;
  captures(): string[];
}

function apply(rule: ValueRule, context: RenderContext): string {
  if (rule.from === 'fixed') return rule.value;
  if (rule.from === 'field') return read(context.object, rule.field);
  return render(rule.parts, context, false);
}

/** Fills a template. In a topic, each value must be one non-empty segment; elsewhere, non-empty. */
function render(parts: readonly TemplatePart[], context: RenderContext, topic: boolean): string {
  let text = '';
  for (const part of parts) {
    if (part.kind === 'text') text += part.text;
    else if (part.kind === 'source') text += context.channel;
    else if (part.kind === 'capture') {
      text += checked(context.captures()[part.index - 1] ?? '', `wildcard {${part.index}}`, topic);
    } else {
      text += checked(read(context.object, part.field), `field "${part.field.name}"`, topic);
    }
  }
  return text;
}

/** A string or finite number at `field`, as text; anything else is the publisher's mistake. */
function read(object: Record<string, unknown> | undefined, field: FieldRef): string {
  let value: unknown = object;
  for (const key of field.path) {
    // Own properties only: "constructor" or "__proto__" must not resolve to Object's.
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, key)) {
      throw new Error(`the message has no field "${field.name}"`);
    }
    value = (value as Record<string, unknown>)[key];
  }
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value !== 'string') {
    throw new Error(`field "${field.name}" is ${describe(value)}; it must be a string or a number`);
  }
  if (value === '') throw new Error(`field "${field.name}" is empty`);
  return value;
}

/**
 * A value put into the topic is one segment of it: a `/` would let a message choose another
 * place in the topic tree than the template gives it. An empty value is refused everywhere: an
 * empty tenant would be the default tenant, which is not what a per-message tenant means.
 */
function checked(value: string, what: string, topic: boolean): string {
  if (value === '')
    throw new Error(`${what} is empty${topic ? ', which would leave a hole in the topic' : ''}`);
  if (topic && value.includes('/')) {
    throw new Error(`${what} is ${JSON.stringify(value)}; a value put into the topic may not contain "/"`);
  }
  return value;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') return `the number ${value}`;
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function excerpt(text: string): string {
  return text.length > 40 ? `${JSON.stringify(text.slice(0, 40))}…` : JSON.stringify(text);
}
