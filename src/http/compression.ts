import zlib from 'node:zlib';
import type { Sink } from '../core/subscriber.ts';
import { type CompressionOption, type ContentCoding, negotiate, offeredCodings } from './content-coding.ts';
import { DeflateFraming, FINAL_EMPTY_BLOCK, storedBlocks } from './deflate-framing.ts';

export type { CompressionOption, ContentCoding } from './content-coding.ts';

/**
 * Per-stream compression of event streams, negotiated with `Accept-Encoding` (`gzip`, `deflate`,
 * `br`, all through node:zlib).
 *
 * The fan-out still encodes each event once and hands every recipient the same frame bytes;
 * compression happens after that, per stream, in a `Sink` that wraps the transport's. A stream's
 * compressor (its deflate or brotli state) is its own: small events compress because the
 * compressor remembers the stream's earlier bytes (the same field names, topics, ids), and that
 * history differs from stream to stream, so it cannot be shared. The cost is memory (below the
 * codings): a gzip or deflate stream frees its compressor once idle (10–20 s with nothing but
 * heartbeats) and makes a fresh one for its next event; a brotli stream keeps its own while open.
 *
 * Every write (one flush of the hub: a batch of frames, a heartbeat, a replay page) is compressed
 * and flushed at once (`Z_SYNC_FLUSH`, brotli `BROTLI_OPERATION_FLUSH`), synchronously, so an event
 * is never held back waiting for the next one and the hub's backpressure (`write` returning false)
 * still says what the socket says.
 *
 * A stream is compressed or not from its first byte: the choice is made once, when it opens, so a
 * hub with compression off, or a stream that did not ask for it, writes exactly as before.
 */

/*
 * What one compressed stream costs in memory while its compressor is awake, over an uncompressed
 * one (the benchmark's S9, docs/performance.md "Compression"): gzip or deflate ~90–115 KiB, br
 * ~650–750 KiB (always: a brotli compressor never rests). Node's zlib
 * (Chromium's) allocates a 32 K-entry hash table whatever `memLevel` asks for, so gzip and deflate
 * cost about the same at any small window; brotli's hash tables and block buffers dwarf its window.
 */

/**
 * gzip and deflate: a 4 KiB window (`windowBits` 12) holds the previous event or two to refer
 * back to, which is where a stream of JSON events gets its ratio (measured on the S9 events: ~100
 * bytes to 27 %, ~2 KB to 21 %; a 2 KiB window gives 25 % on the 2 KB ones, an 8 KiB window 20 %
 * for 16 KiB more); `memLevel` 4 keeps the pending-output buffer small. Level 6 is zlib's default.
 */
const ZLIB_OPTIONS: zlib.ZlibOptions = { windowBits: 12, memLevel: 4, level: 6, chunkSize: 64 };
/**
 * Brotli: quality 5 (quality 4 takes more memory for a worse ratio; 2-3 compress small events to
 * half again as many bytes), a 4 KiB window (`lgwin` 12: no better ratio at 16 on these events).
 */
const BROTLI_OPTIONS: zlib.BrotliOptions = {
  chunkSize: 64,
  params: {
    [zlib.constants.BROTLI_PARAM_QUALITY]: 5,
    [zlib.constants.BROTLI_PARAM_LGWIN]: 12,
    [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
  },
};

/**
 * The native side of a node:zlib stream. Its `writeSync` compresses in place, with no thread-pool
 * hop and no stream machinery; node:zlib's own `*Sync` functions use it the same way but close the
 * compressor after one call, which a stream that lives on cannot. It has had this shape since
 * Node 12; `compressorSupported` checks it once, and a runtime without it sends identity.
 */
interface NativeCompressor {
  writeSync(
    flush: number,
    input: Uint8Array,
    inputOffset: number,
    inputLength: number,
    output: Uint8Array,
    outputOffset: number,
    outputLength: number,
  ): void;
}

interface ZlibInternals {
  readonly _handle: NativeCompressor | null;
  /** `[output bytes left, input bytes left]` after each `writeSync`. */
  readonly _writeState: Uint32Array;
}

type Engine = (zlib.DeflateRaw | zlib.BrotliCompress) & ZlibInternals;

/**
 * One scratch buffer for every compressor: output is copied out of it at each write, so an idle
 * compressed stream holds no output buffer of its own. Writes are synchronous and never overlap.
 * Made with the first compressor: a hub that never compresses never holds it.
 */
let scratch: Buffer | undefined;
const SCRATCH_BYTES = 64 * 1024;

/** gzip and deflate both compress raw deflate; their wrappers are `DeflateFraming`'s. */
function newEngine(coding: ContentCoding): Engine {
  const engine = (
    coding === 'br' ? zlib.createBrotliCompress(BROTLI_OPTIONS) : zlib.createDeflateRaw(ZLIB_OPTIONS)
  ) as Engine;
  // A failure of the native compressor (out of memory) is seen by `compress` (the handle is gone),
  // which ends the stream; not an unhandled 'error' event.
  engine.on('error', () => {});
  return engine;
}

let supported: boolean | undefined;

/** Whether this runtime's node:zlib has the synchronous native compressor (Node does; checked once). */
export function compressorSupported(): boolean {
  if (supported === undefined) {
    try {
      const engine = newEngine('gzip');
      supported =
        typeof engine._handle?.writeSync === 'function' && engine._writeState instanceof Uint32Array;
      engine.close();
    } catch {
      supported = false;
    }
  }
  return supported;
}

/**
 * A gzip or deflate stream holds a compressor only while it is busy (see deflate-framing.ts for
 * why the body stays one valid stream):
 *
 * - It has none until it needs one: a write goes out stored (as it is, in a stored deflate block)
 *   unless it is over `WAKE_BYTES` or follows another within `REST_SWEEP_MS`. So an idle stream
 *   (its `herald.connected`, heartbeats) and one whose events are rare cost no compressor: a lone
 *   small event compresses little without the history of the ones before it anyway.
 * - Its compressor is freed after one to two sweeps (`REST_SWEEP_MS` apart) with nothing but
 *   heartbeats written; its next busy spell starts a fresh one.
 *
 * Freed compressors' memory goes back to the allocator, which reuses it for the next ones rather
 * than returning it to the system: a node's memory follows how many streams were busy at once.
 */
export const REST_SWEEP_MS = 10_000;
/** Writes this small (a heartbeat) never count as use. */
const STORED_WRITE_MAX = 64;
/** A write this large wakes a compressor on its own: it is worth compressing without history. */
const WAKE_BYTES = 1024;

/** Compressors that may rest: swept every `REST_SWEEP_MS`, by one timer for all. */
const awake = new Set<CompressingSink>();
let sweeper: ReturnType<typeof setInterval> | undefined;

function watch(sink: CompressingSink): void {
  awake.add(sink);
  if (sweeper === undefined) {
    sweeper = setInterval(restIdleCompressors, REST_SWEEP_MS);
    // Never what keeps a process alive.
    sweeper.unref?.();
  }
}

function unwatch(sink: CompressingSink): void {
  awake.delete(sink);
  if (awake.size === 0 && sweeper !== undefined) {
    clearInterval(sweeper);
    sweeper = undefined;
  }
}

/** gzip and deflate compressors awake now (not resting, not released): for tests and figures. */
export function awakeCompressors(): number {
  return awake.size;
}

/**
 * One sweep: frees the compressor of every gzip or deflate stream that wrote nothing through it
 * since the last sweep. The timer calls it; tests call it to rest compressors without waiting.
 */
export function restIdleCompressors(): void {
  for (const sink of [...awake]) sink.restIfIdle();
}

/**
 * Compresses what the hub writes before handing it to the transport's sink: each `write` is one
 * flushed piece of the stream, `end` finishes it (the gzip or zlib trailer, brotli's last block).
 * A gzip or deflate stream frees its compressor when idle and makes a new one for its next event;
 * brotli streams cannot (their blocks do not concatenate) and keep theirs. The adapter calls
 * `release` when the connection closes under it, so the memory is freed then, not when collected.
 */
export class CompressingSink implements Sink {
  private readonly inner: Sink;
  private readonly coding: ContentCoding;
  /** gzip and deflate: the wrapper, around raw deflate from one compressor or several. */
  private readonly framing: DeflateFraming | undefined;
  private engine: Engine | undefined;
  private finished = false;
  /** Written through the compressor since the last sweep. */
  private used = false;
  /** While it has no compressor: when it last wrote more than a heartbeat (ms since the epoch). */
  private lastStoredAt = Number.NEGATIVE_INFINITY;
  private readonly flushFlag: number;
  private readonly finishFlag: number;

  constructor(coding: ContentCoding, inner: Sink) {
    this.inner = inner;
    this.coding = coding;
    const brotli = coding === 'br';
    this.framing = brotli ? undefined : new DeflateFraming(coding === 'gzip' ? 'gzip' : 'zlib');
    this.flushFlag = brotli ? zlib.constants.BROTLI_OPERATION_FLUSH : zlib.constants.Z_SYNC_FLUSH;
    this.finishFlag = brotli ? zlib.constants.BROTLI_OPERATION_FINISH : zlib.constants.Z_FINISH;
  }

  write(chunks: readonly Uint8Array[]): boolean {
    if (this.finished) return false;
    const pieces: Uint8Array[] = [];
    const framing = this.framing;
    let size = 0;
    for (const chunk of chunks) size += chunk.byteLength;
    if (framing !== undefined) {
      const header = framing.header();
      if (header !== undefined) pieces.push(header);
      for (const chunk of chunks) framing.add(chunk);
      if (this.engine === undefined && !this.wakes(size)) {
        // Not busy: as it is, in stored blocks, without a compressor.
        if (size > 0) pieces.push(storedBlocks(chunks, size));
        return (
          pieces.length === 0 || this.inner.write(pieces.length === 1 ? pieces : [Buffer.concat(pieces)])
        );
      }
    }
    const engine = this.wake();
    // Heartbeats keep a connection alive, not a compressor: they do not count as use.
    if (size > STORED_WRITE_MAX) this.used = true;
    const last = chunks.length - 1;
    for (let i = 0; i <= last; i++) {
      // Only the last chunk of a write flushes: the frames of one flush are one compressed piece.
      const out = compress(engine, chunks[i] as Uint8Array, i === last ? this.flushFlag : NO_FLUSH);
      if (out === undefined) {
        this.release();
        this.inner.destroy();
        return false;
      }
      if (out.byteLength > 0) pieces.push(out);
    }
    // Nothing came out (an empty write): nothing to send, and an empty chunk would end the body.
    if (pieces.length === 0) return true;
    return this.inner.write(pieces.length === 1 ? pieces : [Buffer.concat(pieces)]);
  }

  end(): void {
    if (!this.finished) {
      const pieces: Uint8Array[] = [];
      const framing = this.framing;
      const header = framing?.header();
      if (header !== undefined) pieces.push(header);
      const engine = this.engine;
      const tail = engine === undefined ? FINAL_EMPTY_BLOCK : compress(engine, EMPTY, this.finishFlag);
      if (tail !== undefined) {
        pieces.push(tail);
        if (framing !== undefined) pieces.push(framing.trailer());
        this.inner.write([Buffer.concat(pieces)]);
      }
      this.release();
    }
    this.inner.end();
  }

  destroy(): void {
    this.release();
    this.inner.destroy();
  }

  /** Frees the compressor for good (the connection is gone, or the stream ended); writes are refused. */
  release(): void {
    this.finished = true;
    this.rest();
  }

  /** The sweeper: frees the compressor if nothing went through it since the last sweep. */
  restIfIdle(): void {
    if (this.used) this.used = false;
    else this.rest();
  }

  /** Whether a write of `size` bytes, with no compressor, makes one: the stream is busy. */
  private wakes(size: number): boolean {
    if (size <= STORED_WRITE_MAX) return false;
    if (size > WAKE_BYTES) return true;
    const now = Date.now();
    const busy = now - this.lastStoredAt < REST_SWEEP_MS;
    this.lastStoredAt = now;
    return busy;
  }

  /** The compressor, made (again) if it rested. */
  private wake(): Engine {
    let engine = this.engine;
    if (engine === undefined) {
      engine = newEngine(this.coding);
      this.engine = engine;
      // Brotli cannot rest: it is not swept, only released.
      if (this.framing !== undefined) watch(this);
    }
    return engine;
  }

  private rest(): void {
    const engine = this.engine;
    if (engine === undefined) return;
    this.engine = undefined;
    unwatch(this);
    engine.close();
  }
}

/** `input` through the compressor with `flush`, as a buffer of its own; undefined if it failed. */
function compress(engine: Engine, input: Uint8Array, flush: number): Buffer | undefined {
  const handle = engine._handle;
  if (handle === null) return undefined;
  const state = engine._writeState;
  scratch ??= Buffer.allocUnsafe(SCRATCH_BYTES);
  const out = scratch;
  let inputOffset = 0;
  let inputLeft = input.byteLength;
  let first: Buffer | undefined;
  let more: Buffer[] | undefined;
  for (;;) {
    try {
      handle.writeSync(flush, input, inputOffset, inputLeft, out, 0, SCRATCH_BYTES);
    } catch {
      return undefined;
    }
    if (engine._handle === null) return undefined;
    const outputLeft = state[0] as number;
    const inputLeftAfter = state[1] as number;
    const produced = SCRATCH_BYTES - outputLeft;
    if (produced > 0) {
      const piece = Buffer.from(out.subarray(0, produced));
      if (first === undefined) first = piece;
      else if (more === undefined) more = [piece];
      else more.push(piece);
    }
    inputOffset += inputLeft - inputLeftAfter;
    inputLeft = inputLeftAfter;
    // Room left in the output: the compressor has given all it has for this flush.
    if (outputLeft !== 0) break;
  }
  if (first === undefined) return EMPTY;
  return more === undefined ? first : Buffer.concat([first, ...more]);
}

const NO_FLUSH = zlib.constants.Z_NO_FLUSH;
const EMPTY = Buffer.alloc(0);

/**
 * The compression an adapter applies: which codings it offers, and for a stream that accepts one,
 * the sink that compresses it. Undefined from `compressionOf` when compression is off, so an
 * adapter asks one question per stream, at open.
 */
export class StreamCompression {
  readonly codings: readonly ContentCoding[];

  constructor(codings: readonly ContentCoding[]) {
    this.codings = codings;
  }

  /** The coding for this `Accept-Encoding`, or undefined for identity. */
  negotiate(acceptEncoding: string | undefined): ContentCoding | undefined {
    return negotiate(acceptEncoding, this.codings);
  }
}

/**
 * The compression of an option (`createHerald`'s, or an adapter's that overrides it), or
 * undefined when it is off or this runtime lacks the synchronous compressor.
 */
export function compressionOf(option: CompressionOption | undefined): StreamCompression | undefined {
  const codings = offeredCodings(option);
  if (codings.length === 0 || !compressorSupported()) return undefined;
  return new StreamCompression(codings);
}
