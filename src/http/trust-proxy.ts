import { BlockList, isIP } from 'node:net';

/**
 * The client's address behind reverse proxies the operator trusts (`trustProxy`,
 * `--trust-proxy`), so that per-IP limits count clients, not the load balancer they all share.
 *
 * The forwarded header is read only when the TCP peer is a trusted proxy, and walked right to
 * left past trusted hops, as Express's proxy-addr does: each entry was written by the hop to its
 * right, so the first untrusted one is the address a trusted proxy saw, and whatever a client
 * wrote to the left of it is never believed. Hand-written rather than proxy-addr because that
 * reads only `X-Forwarded-For`, not RFC 7239's `Forwarded`, and the CIDR matching it brings
 * (ipaddr.js) is node:net's `BlockList` here.
 *
 * One header, never both: a proxy writes `Forwarded` or `X-Forwarded-For` and passes the other
 * through as the client sent it, so a request carrying both holds one header that the client
 * wrote, and nothing says which. Such a request counts as coming from the trusted peer itself:
 * whoever forges one shares a single bucket with every other such request, while clients that
 * forge nothing keep their own.
 */

/** Named ranges, as proxy-addr names them. */
const PRESETS: Readonly<Record<string, readonly string[]>> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

const HINT = `use an IP address, a CIDR (10.0.0.0/8, fd00::/8) or ${Object.keys(PRESETS).join(', ')}`;

/** RFC 7239 §6: `unknown`, or an obfuscated identifier a proxy uses to name a client stably. */
const IDENTIFIER = /^(unknown|_[A-Za-z0-9._-]{1,63})$/i;

/** An IPv4-mapped IPv6 address (RFC 4291 §2.5.5.2), as the WHATWG URL parser writes it. */
const MAPPED_IPV4 = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/;

export class TrustedProxies {
  private readonly trusted = new BlockList();
  /** Whether any proxy is trusted at all: if not, headers are never read. */
  readonly enabled: boolean;

  /** Throws an Error naming the entry that is neither an address, a CIDR nor a preset. */
  constructor(entries: string | readonly string[] = []) {
    // `10.0.0.0/8, fd00::/8` as one entry too: as an environment variable holds a list.
    const list = (typeof entries === 'string' ? [entries] : entries).flatMap((entry) => entry.split(','));
    let any = false;
    for (const raw of list) {
      const entry = raw.trim();
      if (entry === '') continue;
      for (const range of PRESETS[entry.toLowerCase()] ?? [entry]) this.add(range, entry);
      any = true;
    }
    this.enabled = any;
  }

  /**
   * The client's address: the peer's, or, when the peer is a trusted proxy, the first untrusted
   * hop of its forwarded header read right to left. IPv4-mapped IPv6 addresses come back as IPv4.
   */
  clientAddress(peer: string | undefined, header: (name: string) => string | undefined): string | undefined {
    if (peer === undefined) return undefined;
    let client = normalize(peer);
    if (!this.enabled || !this.isTrusted(client)) return client;
    const forwarded = header('forwarded');
    const xForwardedFor = header('x-forwarded-for');
    if (forwarded !== undefined && xForwardedFor !== undefined) return client;
    const hops = forwarded !== undefined ? forwardedFor(forwarded) : xForwardedFor?.split(',');
    if (hops === undefined) return client;
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hopAddress(hops[i] as string);
      // Not an address we can judge: an identifier the proxy chose stands for the client, and
      // anything malformed is not believed (the trusted hop that wrote it is the client).
      if (hop === undefined) return client;
      if (isIP(hop) === 0) return hop;
      client = hop;
      if (!this.isTrusted(hop)) return hop;
    }
    return client;
  }

  private isTrusted(address: string): boolean {
    const family = isIP(address);
    return family !== 0 && this.trusted.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }

  private add(range: string, entry: string): void {
    const slash = range.indexOf('/');
    const written = slash === -1 ? range : range.slice(0, slash);
    const address = normalize(written);
    const family = isIP(address);
    // `::ffff:10.0.0.0/104` is `10.0.0.0/8`.
    const mapped = family === 4 && isIP(written) === 6;
    const max = family === 4 ? 32 : 128;
    const bits = range.slice(slash + 1);
    let prefix = slash === -1 ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : Number.NaN;
    if (mapped && slash !== -1) prefix -= 96;
    if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > max || /\s/.test(range)) {
      throw new Error(`trust proxy: ${JSON.stringify(entry)} is not an address or a CIDR; ${HINT}`);
    }
    this.trusted.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/**
 * One spelling per address, so one client is one bucket: IPv6 compressed and lower-case
 * (`2001:DB8:0::1` is `2001:db8::1`), and IPv4-mapped IPv6 (`::ffff:10.0.0.1`, which a dual-stack
 * socket reports for IPv4 peers) as the IPv4 address it is.
 */
function normalize(address: string): string {
  if (isIP(address) !== 6) return address;
  let canonical: string;
  try {
    canonical = new URL(`http://[${address}]`).hostname.slice(1, -1);
  } catch {
    return address.toLowerCase(); // a zone id (fe80::1%eth0), which URLs do not take
  }
  const mapped = MAPPED_IPV4.exec(canonical);
  if (mapped === null) return canonical;
  const high = Number.parseInt(mapped[1] as string, 16);
  const low = Number.parseInt(mapped[2] as string, 16);
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

/**
 * One hop as a header names it: an IP address (IPv6 in brackets, either with a port, as RFC 7239
 * writes them and some proxies add to X-Forwarded-For), an RFC 7239 identifier, or `undefined`
 * for anything else.
 */
function hopAddress(raw: string): string | undefined {
  let hop = raw.trim();
  if (hop.startsWith('[')) {
    const end = hop.indexOf(']');
    if (end === -1 || !/^(:\d{1,5})?$/.test(hop.slice(end + 1))) return undefined;
    hop = hop.slice(1, end);
    return isIP(hop) === 6 ? normalize(hop) : undefined;
  }
  const port = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(hop);
  if (port !== null) hop = port[1] as string;
  if (isIP(hop) !== 0) return normalize(hop);
  return IDENTIFIER.test(hop) ? hop : undefined;
}

/**
 * The `for` value of each element of a `Forwarded` header (RFC 7239 §4), in order; `''` for an
 * element without one. Elements are split at commas without regard to quotes: no `for` value holds
 * a comma, and a client's unbalanced quote must not swallow the element a proxy appended after it.
 */
function forwardedFor(header: string): string[] {
  return header.split(',').map((element) => {
    for (const pair of element.split(';')) {
      const equals = pair.indexOf('=');
      if (equals === -1 || pair.slice(0, equals).trim().toLowerCase() !== 'for') continue;
      const value = pair.slice(equals + 1).trim();
      if (!value.startsWith('"')) return value;
      if (value.length < 2 || !value.endsWith('"')) return '';
      return value.slice(1, -1).replace(/\\(.)/g, '$1');
    }
    return '';
  });
}
