import { maskSecrets } from '../observability/logger.ts';
import { ConfigError, describeOrigin, type ResolvedConfig } from './config.ts';
import { heraldOptions, isLoopback } from './serve.ts';
import { GROUPS, SETTINGS } from './settings.ts';
import { formatValue } from './settings-text.ts';
import { closest } from './suggestions.ts';
import { loadTls } from './tls.ts';

/**
 * `herald config check`: whether serve would start with these settings, without starting it. It
 * refuses what serve would refuse (settings that do not parse, files and keys that cannot be
 * read, open mode on a public address), warns of `HERALD_…` variables that name no setting, and
 * prints each setting with where its value came from, secrets masked.
 */

/** The report of `resolved`, one setting a line; throws a `ConfigError` when serve would refuse it. */
export function configCheck(
  resolved: ResolvedConfig,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string {
  const problems = deeperProblems(resolved);
  if (problems.length > 0) throw new ConfigError(problems);
  const width = Math.max(...SETTINGS.map((s) => s.name.length)) - 1;
  const lines: string[] = [];
  for (const warning of unknownVariables(env)) lines.push(`warning: ${warning}`);
  for (const group of GROUPS) {
    lines.push(`${group}:`);
    for (const s of SETTINGS.filter((candidate) => candidate.group === group)) {
      const value = formatValue(s, resolved.config[s.key]);
      lines.push(
        `  ${s.name.slice(2).padEnd(width)}  ${value.padEnd(24)}  ${describeOrigin(s, resolved.origins[s.key])}`,
      );
    }
  }
  lines.push('herald config check: the configuration is valid');
  return maskSecrets(lines.join('\n'));
}

/** What `serve` would refuse at start that the settings alone do not show: files, keys, open mode. */
function deeperProblems({ config }: ResolvedConfig): string[] {
  const problems: string[] = [];
  try {
    loadTls(config);
  } catch (error) {
    problems.push((error as Error).message);
  }
  try {
    const options = heraldOptions(config);
    if (
      options.auth === undefined &&
      options.authUrl === undefined &&
      !config.insecure &&
      !isLoopback(config.host)
    ) {
      problems.push(
        `--host ${config.host}: open development mode (no JWT key configured) is refused on a non-loopback address; configure --jwt-secret, --jwt-public-key, --jwks-url or --auth-url, or pass --insecure if this network is yours alone`,
      );
    }
  } catch (error) {
    problems.push((error as Error).message);
  }
  return problems;
}

/** `HERALD_PROT`: a variable that looks like a setting's but is none, with the one it is near. */
function unknownVariables(env: Readonly<Record<string, string | undefined>>): string[] {
  const known = SETTINGS.flatMap((s) => s.env);
  const extra = new Set(['HERALD_URL', 'HERALD_TOKEN', 'HERALD_CONFIG']);
  return Object.keys(env)
    .filter((name) => name.startsWith('HERALD_') && !known.includes(name) && !extra.has(name))
    .flatMap((name) => {
      const near = closest(name, known);
      return near === undefined ? [] : [`${name} is not a setting (did you mean ${near}?); it is ignored`];
    });
}
