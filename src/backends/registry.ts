import type { Backend } from './backend.ts';
import { memory } from './memory/backend.ts';
import { nats } from './nats/backend.ts';
import { redis } from './redis/backend.ts';

/**
 * Every backend Herald knows, one registration each: a new one (PostgreSQL, Kafka) is a folder
 * beside these and a line here. `brokerFor`, the configuration's URL check and its help text,
 * and the bridges all ask this list; none of them names a backend. The worker pipe (ipc/) is
 * not here: no URL names it, `herald serve --workers` sets it up itself.
 */
export const BACKENDS: readonly Backend[] = [memory, redis, nats];

/** The backend a broker URL names: its kind alone (`memory`) or one of its schemes. */
export function backendOf(url: string): Backend | undefined {
  const scheme = /^([a-z]+):\/\//i.exec(url)?.[1]?.toLowerCase();
  return BACKENDS.find((backend) =>
    backend.schemes.length === 0
      ? url === backend.kind
      : scheme !== undefined && backend.schemes.includes(scheme),
  );
}

/** The backend registered as `kind`. */
export function backendNamed(kind: string): Backend | undefined {
  return BACKENDS.find((backend) => backend.kind === kind);
}

/** Every broker URL shape, for help: `memory, redis://host:port[/db] or nats://host:port`. */
export function brokerUrlHint(): string {
  return list(BACKENDS.map((backend) => backend.example));
}

/**
 * Every broker URL shape and each further scheme, for a refused value:
 * `memory, redis://host:port[/db], rediss://… or nats://host:port`.
 */
export function brokerUrlHintWithSchemes(): string {
  return list(
    BACKENDS.flatMap((backend) => [backend.example, ...backend.schemes.slice(1).map((s) => `${s}://…`)]),
  );
}

/** What a broker URL must look like: a registered kind alone, or a registered scheme and more. */
export function brokerUrlPattern(): RegExp {
  const bare = BACKENDS.filter((backend) => backend.schemes.length === 0).map((backend) => backend.kind);
  const schemes = BACKENDS.flatMap((backend) => backend.schemes);
  return new RegExp(`^(${[...bare, `(${schemes.join('|')}):\\/\\/.+`].join('|')})$`, 'i');
}

/** What a URL of one backend must look like (`--bridge-redis`): one of its schemes and more. */
export function backendUrlPattern(kind: string): RegExp {
  const schemes = backendNamed(kind)?.schemes ?? [];
  return new RegExp(`^(${schemes.join('|')}):\\/\\/.+`, 'i');
}

/** `a`, `a or b`, `a, b or c`. */
function list(items: readonly string[]): string {
  return items.length <= 1
    ? items.join('')
    : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}
