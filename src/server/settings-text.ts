import { maskUrl } from './masking.ts';
import { formatDuration, formatSize } from './setting-values.ts';
import { GROUPS, SETTINGS, type Setting } from './settings.ts';

/**
 * The settings in words, as `serve --help`, `herald config check` and the configuration table of
 * docs/configuration.md show them, all from the one table so that none says other than the rest.
 */

/**
 * A setting's value as `--help`, `config check` and docs/configuration.md show it: as it would be
 * typed, `(set)` for a secret, credentials in URLs masked, `none` when there is none.
 */
export function formatValue(s: Setting, value: unknown): string {
  if (value === undefined || (Array.isArray(value) && value.length === 0)) return 'none';
  if (s.secret) return '(set)';
  if (s.kind === 'duration' && typeof value === 'number') return formatDuration(value);
  if (s.kind === 'size' && typeof value === 'number') return formatSize(value);
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  if (Array.isArray(value)) return value.map((item) => maskUrl(String(item))).join(', ');
  return maskUrl(String(value));
}

/** What `serve --help` says of a setting: what it does, its default, its variables. */
export function settingHelp(s: Setting): string {
  const notes: string[] = [];
  if (s.kind !== 'switch' && s.defaultValue !== undefined && formatValue(s, s.defaultValue) !== 'none') {
    notes.push(`default: ${formatValue(s, s.defaultValue)}`);
  }
  notes.push(`env: ${s.env.join(' or ')}`);
  return `${s.description} (${notes.join('; ')})`;
}

/**
 * Every setting as Markdown tables, one per group: the configuration table of docs/configuration.md
 * (`herald config table` prints it; test/server/defaults-doc.test.ts checks the page against it).
 */
export function settingsMarkdown(): string {
  const cell = (value: string) => value.replaceAll('|', '\\|');
  const parts: string[] = [];
  for (const group of GROUPS) {
    const rows = SETTINGS.filter((s) => s.group === group);
    parts.push(
      `**${group}**`,
      '',
      '| flag | environment | default | |',
      '| --- | --- | --- | --- |',
      ...rows.map(
        (s) =>
          `| \`${cell(s.flag)}\` | ${s.env.map((name) => `\`${name}\``).join(', ')} | ${cell(
            formatValue(s, s.defaultValue),
          )} | ${cell(s.description)} |`,
      ),
      '',
    );
  }
  return parts.join('\n');
}
