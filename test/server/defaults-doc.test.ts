import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { DEFAULT_HEALTH_TIMEOUT } from '../../src/server/health-command.ts';
import { DEFAULT_HUB_URL } from '../../src/server/publish-command.ts';
import { SETTINGS, type Setting } from '../../src/server/settings.ts';
import { parseSetting } from '../../src/server/settings-schema.ts';
import { settingsMarkdown } from '../../src/server/settings-text.ts';
import { DEFAULT_TOKEN_TTL } from '../../src/server/token-command.ts';

/**
 * One source of truth for defaults: the settings table in src/server/config.ts. The settings
 * table of docs/configuration.md is generated from it (`herald config table`), and every other
 * place the docs state a default (the CLI synopsis and the limits table of docs/configuration.md,
 * "`--flag` (default X)" in the prose of the README and of every page of docs/) is checked against
 * it here, value by value, each parsed as the configuration parses it.
 */

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const CONFIGURATION = read('docs/configuration.md');
/** The README and every page of docs/, for defaults stated in prose. */
const PROSE = [
  'README.md',
  ...readdirSync(new URL('../../docs/', import.meta.url)).map((name) => `docs/${name}`),
]
  .filter((path) => path.endsWith('.md'))
  .map((path) => read(path))
  .join('\n');
const byFlag = new Map<string, Setting>(SETTINGS.map((s) => [s.name, s]));

/** What the code uses when nothing is set, as the configuration parses it. */
function codeDefault(s: Setting): unknown {
  return s.defaultValue === undefined ? undefined : parseSetting(s.key, s.defaultValue);
}

/** A documented value, parsed as the setting parses it (`off` is 0 for numbers and durations). */
function documented(s: Setting, text: string): unknown {
  const value = text.trim().replace(/(\d) (?=\d{3}\b)/g, '$1');
  if (/^off$/i.test(value) && s.kind !== 'switch' && s.kind !== 'on-off') return parseSetting(s.key, 0);
  return parseSetting(s.key, value);
}

function assertDocumented(s: Setting, text: string, where: string): void {
  let parsed: unknown;
  try {
    parsed = documented(s, text);
  } catch (error) {
    assert.fail(
      `${where}: ${s.name} is documented as "${text}", which is not a value of it: ${(error as Error).message}`,
    );
  }
  assert.deepEqual(
    parsed,
    codeDefault(s),
    `${where}: ${s.name} is documented as "${text}"; the code's default differs`,
  );
}

/** `| a | b |` → cells, with `\|` kept inside a cell. */
const cells = (row: string) =>
  row
    .trim()
    .replace(/^\||\|$/g, '')
    .split(/(?<!\\)\|/)
    .map((cell) => cell.trim().replaceAll('\\|', '|'));

describe('the documented defaults are the code’s', () => {
  test("docs/configuration.md's settings table is the one the code generates, and names every setting", () => {
    const match = /<!-- settings-table:start -->\n([\s\S]*?)<!-- settings-table:end -->/.exec(CONFIGURATION);
    assert.ok(match, 'docs/configuration.md has the generated settings table');
    const table = match[1] as string;
    // Compared cell by cell: the formatter pads the page's columns, which changes no cell.
    const rowsOf = (text: string) =>
      text
        .trim()
        .split('\n')
        .map((line) =>
          line.startsWith('|') ? cells(line).map((c) => (/^-+$/.test(c) ? '---' : c)) : line.trim(),
        );
    assert.deepEqual(
      rowsOf(table),
      rowsOf(settingsMarkdown()),
      'docs/configuration.md settings table out of date: replace it with the output of `node src/server/cli.ts config table`',
    );
    const rows = table.split('\n').filter((line) => line.startsWith('| `--'));
    assert.equal(rows.length, SETTINGS.length, 'one row per setting');
    for (const row of rows) {
      const [flag = '', env = '', value = ''] = cells(row);
      const s = byFlag.get(flag.replaceAll('`', '').split(' ')[0] as string);
      assert.ok(s, `a setting for ${flag}`);
      assert.equal(env, s.env.map((name) => `\`${name}\``).join(', '));
      if (value === 'none')
        assert.ok(
          s.defaultValue === undefined || (s.defaultValue as unknown[]).length === 0,
          `${s.name} has a default`,
        );
      else assertDocumented(s, value, 'configuration table');
    }
  });

  test('the CLI synopsis names every serve flag, with the default the code has', () => {
    const start = CONFIGURATION.indexOf('\n## CLI\n');
    assert.ok(start >= 0, 'docs/configuration.md has a "## CLI" section');
    const cli = CONFIGURATION.slice(start);
    const block = /```\n([\s\S]*?)```/.exec(cli)?.[1] ?? '';
    const commands = new Map<string, string>();
    let current = '';
    for (const line of block.split('\n')) {
      const start = /^herald ([a-z]+(?: [a-z]+)?)\s/.exec(line);
      if (start) current = (start[1] as string).replace(/ \[.*$/, '');
      commands.set(current, `${commands.get(current) ?? ''} ${line}`);
    }
    const synopsisOf = (command: string) => {
      const text = commands.get(command);
      assert.ok(text, `the synopsis has herald ${command}`);
      const values = new Map<string, string | undefined>();
      for (const group of text.matchAll(/\[([^\]]+)\]/g)) {
        const tokens = (group[1] as string).split(/\s+/).filter(Boolean);
        tokens.forEach((token, i) => {
          if (!token.startsWith('--')) return;
          const next = tokens[i + 1];
          values.set(token, next === undefined || next.startsWith('--') ? undefined : next);
        });
      }
      return values;
    };
    const serve = synopsisOf('serve');
    for (const s of SETTINGS) {
      if (s.group === 'Tests only') continue;
      assert.ok(serve.has(s.name), `the serve synopsis names ${s.name}`);
      const value = serve.get(s.name);
      // FILE, URL, S, ORIGIN…, ADDRESS|CIDR…: a placeholder, not a default.
      const placeholder = value === undefined || /^[A-Z]+(?:[|…][A-Z]*)*…?$/.test(value);
      if (placeholder) {
        if (s.kind !== 'switch') {
          const none =
            s.defaultValue === undefined || (Array.isArray(s.defaultValue) && s.defaultValue.length === 0);
          assert.ok(none, `${s.name} has a default (${String(s.defaultValue)}): the synopsis should show it`);
        }
        continue;
      }
      assertDocumented(s, (value as string).split('|')[0] as string, 'synopsis');
    }
    for (const flag of serve.keys()) {
      assert.ok(flag === '--config' || byFlag.has(flag), `${flag} in the synopsis is a serve flag`);
    }
    for (const command of ['publish', 'listen', 'health'])
      assert.equal(synopsisOf(command).get('--url'), DEFAULT_HUB_URL, `${command} --url`);
    assert.equal(synopsisOf('token').get('--ttl'), DEFAULT_TOKEN_TTL, 'token --ttl');
    assert.equal(synopsisOf('health').get('--timeout'), DEFAULT_HEALTH_TIMEOUT, 'health --timeout');
  });

  test("the limits table's defaults are the code's", () => {
    const header = CONFIGURATION.search(/\| *limit *\| *flag *\| *default, and why *\|/);
    assert.ok(header > 0, 'docs/configuration.md has the limits table');
    const rows = CONFIGURATION.slice(header)
      .split('\n')
      .slice(2)
      .filter(
        (line, i, all) => line.startsWith('|') && all.slice(0, i).every((before) => before.startsWith('|')),
      );
    assert.ok(rows.length >= 8, `rows: ${rows.length}`);
    for (const row of rows) {
      const [, flagCell = '', defaultCell = ''] = cells(row);
      const flags = [...flagCell.matchAll(/`(--[a-z-]+)`/g)].map((m) => m[1] as string);
      // "100/s, burst 1 000", "4 MiB / 1 MiB", "off: …", "60 s, then 408": the first value per flag.
      const values = [
        ...defaultCell.matchAll(/\b(off|\d{1,3}(?: \d{3})+|\d+(?:\.\d+)?(?: ?(?:ms|s|m|h|d|KiB|MiB)\b)?)/g),
      ].map((m) => m[1] as string);
      assert.ok(values.length >= flags.length, `${row}: a value per flag`);
      flags.forEach((flag, i) => {
        const s = byFlag.get(flag);
        assert.ok(s, `${flag} is a setting`);
        assertDocumented(s, values[i] as string, `limits table (${flag})`);
      });
    }
  });

  test('every "`--flag` (default X)" in the README and docs/ is the code’s default', () => {
    const found: string[] = [];
    const patterns = [
      // `--heartbeat` (default 15s), `--stream` (default `herald`), `herald serve --workers N` (`HERALD_WORKERS`; default 1; …)
      /`(?:herald serve )?(--[a-z-]+)[^`]*`\s*\((?:`[^`]*`;\s*)?default:?\s+(`[^`]+`|[^),;:]+)/g,
      // at the default `--log-level info`
      /default `(--[a-z-]+) ([^`]+)`/g,
    ];
    for (const pattern of patterns) {
      for (const match of PROSE.matchAll(pattern)) {
        const s = byFlag.get(match[1] as string);
        const value = (match[2] as string).replaceAll('`', '').trim();
        // "default: the broker if it is Redis…", "the --jwt-* keys": a rule, not a value.
        if (s === undefined || /^the\b/.test(value)) continue;
        assertDocumented(s, value, `prose at "${match[0].replace(/\s+/g, ' ')}"`);
        found.push(s.name);
      }
    }
    for (const flag of [
      '--heartbeat',
      '--idle-timeout',
      '--max-lifetime',
      '--mercure-cookie-name',
      '--workers',
      '--stream',
      '--jwt-leeway',
      '--log-level',
    ])
      assert.ok(
        found.includes(flag),
        `the prose default of ${flag} was checked (found: ${found.join(', ')})`,
      );
  });
});
