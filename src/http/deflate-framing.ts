import zlib from 'node:zlib';

/**
 * The gzip (RFC 1952) and zlib (RFC 1950, HTTP's `deflate`) wrappers around a raw deflate stream,
 * written by hand so that the deflate stream inside may be made by more than one compressor.
 *
 * Why: a compressed stream's compressor costs ~100 KiB, most of it a hash table Node's zlib sizes
 * on its own, and an idle stream needs none of it. After a sync flush a deflate stream stands at
 * a byte boundary between blocks, and nothing later has to refer back to what came before, so a
 * stream may free its compressor while idle and start a fresh one for its next event: the blocks
 * of both compressors make one valid deflate stream. Only the wrapper must span them — its header
 * once, its checksum and length over everything — and node:zlib's gzip and zlib streams keep
 * those inside the compressor being freed, hence this.
 */

export type Wrapper = 'gzip' | 'zlib';

/** ID1 ID2, CM deflate, no flags, no mtime, XFL 0, OS 3 (Unix, as node:zlib writes). */
const GZIP_HEADER = Uint8Array.of(0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03);
/** CM deflate with a 32 KiB window, default level: what a decoder expects of most zlib streams. */
const ZLIB_HEADER = Uint8Array.of(0x78, 0x9c);

/** A final stored block of no bytes (BFINAL 1, BTYPE 00, LEN 0, NLEN 0xffff), at a byte boundary. */
export const FINAL_EMPTY_BLOCK = Uint8Array.of(0x01, 0x00, 0x00, 0xff, 0xff);

/** Bytes of one stored block at most (LEN is 16 bits). */
const MAX_STORED = 0xffff;

/** Adler-32's modulus, and how many bytes its sums can take before they must be reduced. */
const ADLER_BASE = 65_521;
const ADLER_RUN = 5_552;

/** Adler-32 (RFC 1950) of `data`, continuing from `adler`. */
export function adler32(adler: number, data: Uint8Array): number {
  let a = adler & 0xffff;
  let b = adler >>> 16;
  let i = 0;
  while (i < data.length) {
    const end = Math.min(i + ADLER_RUN, data.length);
    for (; i < end; i++) {
      a += data[i] as number;
      b += a;
    }
    a %= ADLER_BASE;
    b %= ADLER_BASE;
  }
  return ((b << 16) | a) >>> 0;
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (RFC 1952) of `data`, continuing from `crc`: node:zlib's where it has one (22.2 and later). */
export function crc32(crc: number, data: Uint8Array): number {
  const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
  return native === undefined ? tableCrc32(crc, data) : native(data, crc);
}

/** CRC-32 by table, for a Node without `zlib.crc32`. */
export function tableCrc32(crc: number, data: Uint8Array): number {
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++)
    c = (crcTable[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}

/** `chunks` (`size` bytes in all) as stored, non-final deflate blocks: no compressor needed. */
export function storedBlocks(chunks: readonly Uint8Array[], size: number): Uint8Array {
  const blocks = Math.max(1, Math.ceil(size / MAX_STORED));
  const out = new Uint8Array(size + 5 * blocks);
  let at = 0;
  let left = size;
  let chunk = 0;
  let offset = 0;
  for (let block = 0; block < blocks; block++) {
    const length = Math.min(left, MAX_STORED);
    out[at++] = 0x00;
    out[at++] = length & 0xff;
    out[at++] = length >>> 8;
    out[at++] = ~length & 0xff;
    out[at++] = (~length >>> 8) & 0xff;
    let need = length;
    while (need > 0) {
      const from = chunks[chunk] as Uint8Array;
      const take = Math.min(need, from.byteLength - offset);
      out.set(from.subarray(offset, offset + take), at);
      at += take;
      need -= take;
      offset += take;
      if (offset === from.byteLength) {
        chunk++;
        offset = 0;
      }
    }
    left -= length;
  }
  return out;
}

/** One stream's wrapper: its header once, then the checksum and length of what it carried. */
export class DeflateFraming {
  private readonly wrapper: Wrapper;
  private headerSent = false;
  private check: number;
  private size = 0;

  constructor(wrapper: Wrapper) {
    this.wrapper = wrapper;
    this.check = wrapper === 'gzip' ? 0 : 1;
  }

  /** The header, the first time; undefined after. */
  header(): Uint8Array | undefined {
    if (this.headerSent) return undefined;
    this.headerSent = true;
    return this.wrapper === 'gzip' ? GZIP_HEADER : ZLIB_HEADER;
  }

  /** `data` is part of the uncompressed stream. */
  add(data: Uint8Array): void {
    if (this.wrapper === 'gzip') {
      this.check = crc32(this.check, data);
      this.size = (this.size + data.byteLength) % 2 ** 32;
    } else this.check = adler32(this.check, data);
  }

  /** gzip: CRC-32 and length, little-endian; zlib: Adler-32, big-endian. */
  trailer(): Uint8Array {
    if (this.wrapper === 'zlib') {
      const c = this.check;
      return Uint8Array.of(c >>> 24, (c >>> 16) & 0xff, (c >>> 8) & 0xff, c & 0xff);
    }
    const out = new Uint8Array(8);
    const view = new DataView(out.buffer);
    view.setUint32(0, this.check, true);
    view.setUint32(4, this.size, true);
    return out;
  }
}
