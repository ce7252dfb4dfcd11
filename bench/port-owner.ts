import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * Which process listens on a local TCP port, from Linux's /proc: the listening socket's inode in
 * /proc/net/tcp{,6}, then the process holding a descriptor on it. Reading another user's
 * descriptors takes privileges; without them, the only running process of that name (`pgrep -x`).
 */
export function listeningPid(host: string, port: number, processName: string): number | undefined {
  const inodes = listeningInodes(host, port);
  if (inodes.size > 0) {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let fds: string[];
      try {
        fds = readdirSync(`/proc/${entry}/fd`);
      } catch {
        continue; // Gone meanwhile, or not ours to read.
      }
      for (const fd of fds) {
        let target: string;
        try {
          target = readlinkSync(`/proc/${entry}/fd/${fd}`);
        } catch {
          continue;
        }
        const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
        if (inode !== undefined && inodes.has(inode)) return Number(entry);
      }
    }
  }
  return onlyProcessNamed(processName);
}

const LISTEN = '0A';

/** Inodes of the sockets listening on `port` at `host` or at every address. */
function listeningInodes(host: string, port: number): Set<string> {
  const portHex = port.toString(16).toUpperCase().padStart(4, '0');
  const addresses = new Set([ipv4Hex(host), '00000000', '00000000000000000000000000000000']);
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:when retrnsmt uid timeout inode …
      const fields = line.trim().split(/\s+/);
      const [address, localPort] = (fields[1] ?? '').split(':');
      if (fields[3] !== LISTEN || localPort !== portHex || address === undefined) continue;
      if (addresses.has(address) && fields[9] !== undefined) inodes.add(fields[9]);
    }
  }
  return inodes;
}

/** /proc/net/tcp writes an IPv4 address as one little-endian 32-bit hex word: 127.0.0.1 is 0100007F. */
function ipv4Hex(host: string): string {
  return host
    .split('.')
    .reverse()
    .map((part) => Number(part).toString(16).toUpperCase().padStart(2, '0'))
    .join('');
}

function onlyProcessNamed(name: string): number | undefined {
  try {
    const pids = execFileSync('pgrep', ['-x', name], { encoding: 'utf8', timeout: 5_000 })
      .trim()
      .split('\n')
      .filter((line) => line !== '');
    return pids.length === 1 ? Number(pids[0]) : undefined;
  } catch {
    return undefined; // pgrep exits 1 when nothing matches.
  }
}
