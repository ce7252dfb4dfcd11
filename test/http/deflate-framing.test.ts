import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import zlib from 'node:zlib';
import {
  adler32,
  DeflateFraming,
  FINAL_EMPTY_BLOCK,
  storedBlocks,
  tableCrc32,
} from '../../src/http/deflate-framing.ts';

/**
 * The hand-written gzip and zlib wrappers of compressed streams (src/http/deflate-framing.ts),
 * checked against node:zlib's own decoders and checksums.
 */

const compressible = Buffer.from('id: 1-1\nevent: order.updated\ndata: {"status":"paid"}\n\n'.repeat(400));
const pieces = [randomBytes(70_000), compressible, randomBytes(1), Buffer.alloc(0), randomBytes(80_000)];
const whole = Buffer.concat(pieces);

/** A body as a compressed stream writes it: a raw deflate part, stored parts, the end. */
function body(wrapper: 'gzip' | 'zlib'): Buffer {
  const framing = new DeflateFraming(wrapper);
  const out: Uint8Array[] = [framing.header() as Uint8Array];
  assert.equal(framing.header(), undefined, 'the header once');
  // One compressor's sync-flushed blocks, then stored blocks, then another compressor's.
  const [first, second, ...rest] = pieces as [Buffer, Buffer, ...Buffer[]];
  out.push(zlib.deflateRawSync(first, { finishFlush: zlib.constants.Z_SYNC_FLUSH }));
  framing.add(first);
  out.push(storedBlocks([second], second.byteLength));
  framing.add(second);
  const tail = Buffer.concat(rest);
  out.push(zlib.deflateRawSync(tail, { finishFlush: zlib.constants.Z_SYNC_FLUSH, windowBits: 12 }));
  framing.add(tail);
  out.push(FINAL_EMPTY_BLOCK, framing.trailer());
  return Buffer.concat(out);
}

describe('gzip and zlib wrappers around several compressors', () => {
  test('gzip: gunzip reads it whole, CRC and length checked', () => {
    assert.deepEqual(zlib.gunzipSync(body('gzip')), whole);
  });

  test('zlib (HTTP deflate): inflate reads it whole, Adler-32 checked', () => {
    assert.deepEqual(zlib.inflateSync(body('zlib')), whole);
  });

  test('a corrupted trailer is refused: the checksums are really checked', () => {
    const gzip = body('gzip');
    gzip[gzip.length - 5] = (gzip[gzip.length - 5] as number) ^ 1;
    assert.throws(() => zlib.gunzipSync(gzip));
  });

  test('stored blocks split at 65 535 bytes, across chunk boundaries', () => {
    const blocks = storedBlocks(pieces, whole.byteLength);
    assert.equal(blocks.byteLength, whole.byteLength + 5 * Math.ceil(whole.byteLength / 0xffff));
    assert.deepEqual(zlib.inflateRawSync(Buffer.concat([blocks, FINAL_EMPTY_BLOCK])), whole);
  });

  test("the checksums agree with zlib's", () => {
    const deflated = zlib.deflateSync(whole);
    assert.equal(adler32(1, whole), deflated.readUInt32BE(deflated.length - 4));
    assert.equal(
      tableCrc32(tableCrc32(0, pieces[0] as Buffer), Buffer.concat(pieces.slice(1))),
      zlib.crc32(whole),
    );
  });
});
