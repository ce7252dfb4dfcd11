import { type Command, Option } from 'commander';
import { type ResolvedConfig, resolveSettings } from './config.ts';
import { loadConfigFile } from './config-file.ts';
import { maskUrl } from './masking.ts';
import { DEFAULT_HUB_URL } from './publish-command.ts';
import { GROUPS, SETTINGS } from './settings.ts';
import { settingHelp } from './settings-text.ts';

/**
 * Flags that several commands share: the settings of `serve` (which `config check` takes too,
 * to check what serve would run with), a hub's `--url` and `--token` (publish, listen, health),
 * repeatable flags, and secrets named in help by their variable, never by their value.
 */

const HUB_URL = process.env.HERALD_URL || DEFAULT_HUB_URL;

/** A repeatable flag's values, in the order given. */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

/** ` (env: HERALD_TOKEN, set)`: whether a secret's variable is set, never its value. */
export const secretEnv = (name: string) => ` (env: ${name}${process.env[name] ? ', set' : ''})`;

export const urlOption = () =>
  new Option('--url <url>', 'hub URL (env: HERALD_URL)').default(HUB_URL, maskUrl(HUB_URL));
export const tokenOption = () => new Option('--token <jwt>', `bearer token${secretEnv('HERALD_TOKEN')}`);

/** Every setting as a flag of `command`, grouped in its help as in docs/configuration.md. */
export function addSettings(command: Command): Command {
  command.addOption(
    new Option(
      '--config <file>',
      'settings file, JSON or YAML, with the flags as names (port: 8080); flags and HERALD_… variables override it (env: HERALD_CONFIG)',
    ),
  );
  for (const group of GROUPS) {
    for (const s of SETTINGS.filter((candidate) => candidate.group === group)) {
      const option = new Option(s.flag, settingHelp(s)).helpGroup(`${group}:`);
      command.addOption(s.repeatable ? option.argParser(collect) : option);
    }
  }
  return command;
}

/** Flags over `HERALD_…` variables over the `--config` file (or HERALD_CONFIG) over defaults. */
export function resolveFromCli(flags: Record<string, unknown>): ResolvedConfig {
  const path = typeof flags.config === 'string' ? flags.config : process.env.HERALD_CONFIG || undefined;
  return resolveSettings(flags, process.env, path === undefined ? undefined : loadConfigFile(path));
}
