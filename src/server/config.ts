import { maskSecrets } from '../observability/logger.ts';
import { SETTINGS, type Setting } from './settings.ts';
import { type ServeConfig, type SettingKey, serveConfigSchema } from './settings-schema.ts';

/**
 * The configuration `herald serve` runs with: each setting from its flag, else its `HERALD_…`
 * variable, else the `--config` file, else its default, with where each value came from; all of
 * them checked at once, so that one run names every problem.
 *
 * Every message about a value is in plain words and names what is expected; a value is quoted
 * back with any credential in it masked, and a secret's value never.
 */

/** Where a setting's value came from. */
export type Origin =
  | { readonly from: 'flag' }
  | { readonly from: 'env'; readonly name: string }
  | { readonly from: 'file'; readonly path: string }
  | { readonly from: 'default' };

/** The settings of a `--config` file, by key (src/server/config-file.ts reads it). */
export interface ConfigFileValues {
  readonly path: string;
  readonly values: Readonly<Partial<Record<SettingKey, unknown>>>;
}

export interface ResolvedConfig {
  readonly config: ServeConfig;
  readonly origins: Readonly<Record<SettingKey, Origin>>;
}

/** Settings that cannot be used, each problem on a line of its own (`problems`). */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Flags (as commander gives them, by key) over environment over a config file over defaults. */
export function resolveConfig(
  flags: Readonly<Record<string, unknown>>,
  env: Readonly<Record<string, string | undefined>> = process.env,
  file?: ConfigFileValues,
): ServeConfig {
  return resolveSettings(flags, env, file).config;
}

/** As `resolveConfig`, with where each value came from; throws a `ConfigError` listing every problem. */
export function resolveSettings(
  flags: Readonly<Record<string, unknown>>,
  env: Readonly<Record<string, string | undefined>> = process.env,
  file?: ConfigFileValues,
): ResolvedConfig {
  const raw: Record<string, unknown> = {};
  const origins = {} as Record<SettingKey, Origin>;
  for (const s of SETTINGS) {
    const envName = s.env.find((name) => env[name] !== undefined && env[name] !== '');
    const fromFile = file?.values[s.key];
    if (flags[s.key] !== undefined) {
      raw[s.key] = flags[s.key];
      origins[s.key] = { from: 'flag' };
    } else if (envName !== undefined) {
      raw[s.key] = env[envName];
      origins[s.key] = { from: 'env', name: envName };
    } else if (fromFile !== undefined && file !== undefined) {
      raw[s.key] = fromFile;
      origins[s.key] = { from: 'file', path: file.path };
    } else {
      raw[s.key] = s.defaultValue;
      origins[s.key] = { from: 'default' };
    }
  }
  const parsed = serveConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const s = SETTINGS.find((candidate) => candidate.key === issue.path[0]);
        if (s === undefined) return maskSecrets(issue.message);
        return `${s.name} (${s.env.join(', ')}): ${hideSecret(s, raw[s.key], issue.message)}${originNote(s, origins[s.key])}`;
      }),
    );
  }
  return { config: parsed.data, origins };
}

/** A secret's value never reaches a message, whatever a check wrote. */
function hideSecret(s: Setting, value: unknown, message: string): string {
  if (!s.secret || typeof value !== 'string' || value.length < 4) return message;
  return message.split(value).join('(hidden)');
}

/** Where the refused value came from, when the names in front do not already say it. */
function originNote(s: Setting, origin: Origin): string {
  switch (origin.from) {
    case 'env':
      return s.env.length > 1 ? ` (set by ${origin.name})` : '';
    case 'file':
      return ` (set in ${origin.path})`;
    default:
      return '';
  }
}

/** Where a value came from, in words: `default`, `--port`, `HERALD_PORT`, `herald.yaml`. */
export function describeOrigin(s: Setting, origin: Origin): string {
  switch (origin.from) {
    case 'flag':
      return s.name;
    case 'env':
      return origin.name;
    case 'file':
      return origin.path;
    default:
      return 'default';
  }
}
