import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { ConfigError, type ConfigFileValues } from './config.ts';
import { SETTINGS } from './settings.ts';
import type { SettingKey } from './settings-schema.ts';
import { closest } from './suggestions.ts';

/**
 * `herald serve --config <file>` (HERALD_CONFIG): settings in a JSON or YAML file, under the same
 * names as the flags (`history-size`, `historySize` or `history_size` all name `--history-size`).
 * Flags and `HERALD_…` variables override the file.
 *
 * ```yaml
 * # herald.yaml
 * port: 8080
 * broker: redis://redis:6379
 * history-max-age: 24h
 * cors-origin: [https://app.example]
 * bridge:
 *   - redis:orders:* -> orders/{1}
 * tls-cert: |
 *   -----BEGIN CERTIFICATE-----
 *   …
 * ```
 *
 * YAML is read by the small reader below rather than by a YAML package (no dependency for one
 * flat file): `key: value` lines at the left margin, `# comments`, plain, 'single' and "double"
 * quoted scalars, `[a, b]` and `- item` lists, and `|` / `>` blocks (a PEM certificate in the
 * file). Anything else (nesting, anchors, tags, `{…}`) is refused with its line number: write
 * the file as JSON then.
 */

const KEYS = new Map<string, SettingKey>(SETTINGS.map((s) => [normalize(s.key), s.key]));

function normalize(name: string): string {
  return name.replace(/^-+/, '').replace(/[-_]/g, '').toLowerCase();
}

/** Reads and checks the names in `path`; values are checked with the flags and variables. */
export function loadConfigFile(path: string): ConfigFileValues {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new ConfigError([
      `--config (HERALD_CONFIG): cannot read ${path}: ${
        code === 'ENOENT'
          ? 'no such file'
          : code === 'EACCES'
            ? 'permission denied'
            : (error as Error).message
      }`,
    ]);
  }
  return parseConfigText(text, path);
}

/** The settings in a config file's text: JSON when it is `.json` or starts with `{`, YAML otherwise. */
export function parseConfigText(text: string, path: string): ConfigFileValues {
  const name = path;
  let document: unknown;
  const json = extname(path).toLowerCase() === '.json' || /^\s*\{/.test(text);
  try {
    document = json ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new ConfigError([
      `${name}: ${json ? 'not valid JSON' : 'not YAML Herald reads'}: ${(error as Error).message}`,
    ]);
  }
  if (document === undefined || document === null) return { path: name, values: {} };
  if (typeof document !== 'object' || Array.isArray(document)) {
    throw new ConfigError([`${name}: the settings must be a mapping of names to values (port: 8080)`]);
  }
  const values: Partial<Record<SettingKey, unknown>> = {};
  const problems: string[] = [];
  for (const [key, value] of Object.entries(document)) {
    const known = KEYS.get(normalize(key));
    if (known === undefined) {
      const near = closest(
        key,
        SETTINGS.map((s) => s.name.slice(2)),
      );
      problems.push(
        `${name}: ${JSON.stringify(key)} is not a setting${near === undefined ? '' : ` (did you mean ${near}?)`}; the names are the flags', e.g. history-size`,
      );
      continue;
    }
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      problems.push(`${name}: ${key} holds a mapping; settings are flat (${key}: value)`);
      continue;
    }
    if (value !== null) values[known] = value;
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { path: name, values };
}

/**
 * The YAML subset described above, as a flat object. Throws `line N: …` on anything outside it.
 */
export function parseYaml(text: string): Record<string, unknown> {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const result: Record<string, unknown> = {};
  let i = 0;
  const fail = (n: number, why: string): never => {
    throw new Error(`line ${n + 1}: ${why}`);
  };
  while (i < lines.length) {
    const line = lines[i] as string;
    const content = stripComment(line);
    if (content.trim() === '' || (i === 0 && content.trim() === '---')) {
      i++;
      continue;
    }
    if (content.trim() === '...') break;
    if (/^\s/.test(content)) fail(i, 'indented line outside a list or a | block; settings are flat');
    const match = /^([A-Za-z0-9_.-]+|"[^"]*"|'[^']*')\s*:(?:\s+(.*))?$/.exec(content.trimEnd());
    if (match === null) fail(i, `expected "name: value", got ${JSON.stringify(line.trim())}`);
    const key = unquoteKey((match as RegExpExecArray)[1] as string);
    if (Object.hasOwn(result, key)) fail(i, `${key} is set twice`);
    const rest = ((match as RegExpExecArray)[2] ?? '').trim();
    const start = i;
    i++;
    if (rest === '') {
      // A `- item` list below, or nothing (null).
      const items: unknown[] = [];
      while (i < lines.length) {
        const next = stripComment(lines[i] as string);
        if (next.trim() === '') {
          i++;
          continue;
        }
        const item = /^\s+-(?:\s+(.*))?$/.exec(next.trimEnd()) ?? /^-(?:\s+(.*))?$/.exec(next.trimEnd());
        if (item === null) break;
        if (/^\s*$/.test(item[1] ?? '')) fail(i, 'an empty list item');
        items.push(scalar((item[1] as string).trim(), i, fail));
        i++;
      }
      result[key] = items.length > 0 ? items : null;
    } else if (/^[|>][+-]?$/.test(rest)) {
      const block: string[] = [];
      let indent: number | undefined;
      while (i < lines.length) {
        const next = lines[i] as string;
        if (next.trim() === '') {
          block.push('');
          i++;
          continue;
        }
        const spaces = (/^ */.exec(next) as RegExpExecArray)[0].length;
        if (spaces === 0) break;
        indent ??= spaces;
        if (spaces < indent) fail(i, 'a line of the block is indented less than its first line');
        block.push(next.slice(indent));
        i++;
      }
      while (block.length > 0 && block[block.length - 1] === '') block.pop();
      const folded = rest.startsWith('>') ? block.join(' ').replace(/ {2,}/g, ' ') : block.join('\n');
      result[key] = rest.endsWith('-') ? folded : `${folded}\n`;
      if (block.length === 0) fail(start, `${key}: the ${rest} block is empty`);
    } else {
      result[key] = scalar(rest, start, fail);
    }
  }
  return result;
}

/** The line without a `# comment` (a # that starts the line or follows a space, outside quotes). */
function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote !== undefined) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") {
      if (i === 0 || /[\s:[,-]/.test(line[i - 1] as string)) quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(line[i - 1] as string))) {
      return line.slice(0, i);
    }
  }
  return line;
}

function unquoteKey(key: string): string {
  return key.startsWith('"') || key.startsWith("'") ? key.slice(1, -1) : key;
}

function scalar(text: string, line: number, fail: (n: number, why: string) => never): unknown {
  if (text.startsWith('[')) {
    if (!text.endsWith(']')) fail(line, 'a [ list must end on the same line with ]');
    const inner = text.slice(1, -1).trim();
    if (inner === '') return [];
    return splitFlow(inner, line, fail).map((item) => scalar(item.trim(), line, fail));
  }
  if (text.startsWith('"')) {
    if (!/^"(?:[^"\\]|\\.)*"$/.test(text)) fail(line, `unterminated "string"`);
    try {
      return JSON.parse(text);
    } catch {
      return fail(line, `a "string" with an escape JSON does not know`);
    }
  }
  if (text.startsWith("'")) {
    if (!/^'(?:[^']|'')*'$/.test(text)) fail(line, "unterminated 'string'");
    return text.slice(1, -1).replaceAll("''", "'");
  }
  if (/^[&*!{]/.test(text)) fail(line, 'anchors, aliases, tags and {…} mappings are not read here; use JSON');
  if (/^(~|null)$/i.test(text)) return null;
  if (/^true$/i.test(text)) return true;
  if (/^false$/i.test(text)) return false;
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  return text;
}

/** `a, "b, c", d` → three items: commas inside quotes do not split. */
function splitFlow(text: string, line: number, fail: (n: number, why: string) => never): string[] {
  const items: string[] = [];
  let current = '';
  let quote: string | undefined;
  for (const c of text) {
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
      current += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      current += c;
    } else if (c === ',') {
      items.push(current);
      current = '';
    } else if (c === '[' || c === '{') {
      fail(line, 'nested lists and mappings are not read here; use JSON');
    } else {
      current += c;
    }
  }
  if (quote !== undefined) fail(line, 'unterminated string in a [ list ]');
  items.push(current);
  return items;
}
