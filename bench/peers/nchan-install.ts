/**
 * Finding nginx with the Nchan module, and installing it from Debian's packages when it is missing:
 * `nginx-light` and `libnginx-mod-nchan`, once per run, as root, quietly. When that cannot be done
 * every nchan case is reported as not run, with the reason, instead of vanishing from the table.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { NotRun } from '../scenario.ts';

export const NGINX_PACKAGES = ['nginx-light', 'libnginx-mod-nchan'] as const;
const NGINX = '/usr/sbin/nginx';
/** Where Debian's libnginx-mod-nchan puts the module. */
const MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so';
const INSTALL_TIMEOUT_MS = 240_000;

export interface NchanInstall {
  readonly nginx: string;
  readonly module: string;
  /** `nginx version: nginx/1.22.1`, for the results. */
  readonly version: string;
}

let attempt: NchanInstall | Error | undefined;

function found(): NchanInstall | undefined {
  if (!existsSync(NGINX) || !existsSync(MODULE)) return undefined;
  const version = spawnSync(NGINX, ['-v'], { encoding: 'utf8' }).stderr.trim();
  return { nginx: NGINX, module: MODULE, version };
}

function install(): void {
  if (process.getuid?.() !== 0) {
    throw new Error(`not root, so cannot install it: run \`apt-get install ${NGINX_PACKAGES.join(' ')}\``);
  }
  // policy-rc.d may or may not stop Debian from starting the packaged nginx on port 80; the
  // benchmark only ever runs its own, so a running system nginx would be harmless but left alone.
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const run = (args: string[]) =>
    execFileSync('apt-get', args, { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: INSTALL_TIMEOUT_MS });
  try {
    try {
      run(['install', '-y', '-q', '--no-install-recommends', ...NGINX_PACKAGES]);
    } catch {
      // Stale package lists are the usual cause: refresh them once and retry.
      run(['update', '-q']);
      run(['install', '-y', '-q', '--no-install-recommends', ...NGINX_PACKAGES]);
    }
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim().split('\n').slice(-3).join(' ');
    throw new Error(
      `apt-get install ${NGINX_PACKAGES.join(' ')} failed: ${stderr || (error as Error).message}`,
    );
  }
}

/**
 * nginx and the Nchan module, installed first if missing; tried once per run, so a failed install
 * costs its time once and every later nchan case fails at once with the same reason.
 */
export function nchanInstall(log: (message: string) => void): NchanInstall {
  if (attempt === undefined) {
    let result = found();
    if (result === undefined) {
      log(`nginx with the Nchan module is missing: installing ${NGINX_PACKAGES.join(' ')} with apt-get`);
      try {
        install();
        result = found();
        if (result === undefined) throw new Error(`installed, yet ${NGINX} or ${MODULE} is missing`);
      } catch (error) {
        attempt = new NotRun(
          `nginx with Nchan unavailable: ${error instanceof Error ? error.message : String(error)}`,
        );
        throw attempt;
      }
    }
    log(`${result.version} with ${result.module}`);
    attempt = result;
  }
  if (attempt instanceof Error) throw attempt;
  return attempt;
}
