// Splits a byte stream (arbitrary TCP chunks) into frames. Zero-copy when a header or a
// body lies inside one chunk; otherwise it is gathered into a scratch buffer that never grows
// beyond one maximal frame. Headers are checked as soon as they are complete, so an
// oversized or malformed frame is rejected before its body is awaited.
import { TAG_BYTES } from '../crypto/aead.ts';
import { WireError, WireErrorCode } from './errors.ts';
import { FRAME_NONCE_BYTES, HEADER_BYTES, NONCE_OFFSET, decodeFrameHeader, frameBytes, type FrameHeader, type HeaderLimits } from './frame-header.ts';

/**
 * Receives each frame. `headerBytes` and `sealed` may be views into the pushed chunks or into a
 * scratch buffer that the next frame reuses: use them before returning. May call pause();
 * may throw to stop decoding.
 */
export type FrameSink = (header: FrameHeader, headerBytes: Uint8Array, sealed: Uint8Array) => void;

/**
 * Asked once a frame is complete, before it is taken: false leaves it buffered and pauses the
 * decoder (the frame is offered again after resume()).
 */
export type FrameAdmit = (header: FrameHeader) => boolean;

const SCRATCH_STEP = 64 * 1024;

export class FrameDecoder {
  readonly limits: HeaderLimits;
  readonly #sink: FrameSink;
  readonly #admit: FrameAdmit | undefined;
  #chunks: Buffer[] = [];
  #head = 0; // index of the first chunk with unread bytes
  #offset = 0; // read position inside that chunk
  #buffered = 0;
  #header: FrameHeader | undefined;
  #headerBytes: Uint8Array | undefined;
  readonly #headerScratch = Buffer.allocUnsafe(HEADER_BYTES);
  #bodyScratch: Buffer | undefined;
  #paused = false;
  #processing = false;
  #failed: unknown;

  constructor(limits: HeaderLimits, sink: FrameSink, admit?: FrameAdmit) {
    if (!Number.isInteger(limits.maxFramePayload) || limits.maxFramePayload < 1) throw new RangeError('maxFramePayload must be a positive integer');
    this.limits = limits;
    this.#sink = sink;
    this.#admit = admit;
  }

  /**
   * Bytes received and not yet handed to the sink. These are exactly the bytes of pushed
   * chunks the decoder still references: a caller reading into reused memory must keep them.
   */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Capacity of the body scratch buffer (bounded by one maximal frame body). */
  get scratchBytes(): number {
    return this.#bodyScratch?.byteLength ?? 0;
  }

  /** True between the first byte of a frame and its last. */
  get midFrame(): boolean {
    return this.#header !== undefined || this.#buffered > 0;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Adds bytes and delivers every complete frame (unless paused). Throws WireError. */
  push(chunk: Buffer): void {
    if (this.#failed !== undefined) throw this.#failed;
    if (chunk.byteLength === 0) return;
    const last = this.#chunks.length > this.#head ? this.#chunks[this.#chunks.length - 1] : undefined;
    if (last !== undefined && last.buffer === chunk.buffer && last.byteOffset + last.byteLength === chunk.byteOffset) {
      // The next read of the same arena, right behind the last one: one view over both,
      // so a frame that spans the two reads is still opened in place, not gathered.
      this.#chunks[this.#chunks.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.byteLength + chunk.byteLength);
    } else {
      this.#chunks.push(chunk);
    }
    this.#buffered += chunk.byteLength;
    this.#process();
  }

  /** Stops delivering frames; bytes keep being buffered by push() (callers stop reading too). */
  pause(): void {
    this.#paused = true;
  }

  /** Delivers the frames buffered while paused. Throws WireError. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#failed !== undefined) throw this.#failed;
    this.#process();
  }

  /** The stream ended: throws TRUNCATED when it ended inside a frame. */
  end(): void {
    if (this.#failed !== undefined) throw this.#failed;
    if (this.#header !== undefined) {
      throw this.#fail(
        new WireError(
          WireErrorCode.TRUNCATED,
          `stream ended ${HEADER_BYTES + this.#buffered} bytes into a ${frameBytes(this.#header.payloadLength)}-byte frame`,
        ),
      );
    }
    if (this.#buffered > 0) {
      throw this.#fail(new WireError(WireErrorCode.TRUNCATED, `stream ended inside a frame header (${this.#buffered} of ${HEADER_BYTES} bytes)`));
    }
  }

  #fail(err: unknown): unknown {
    this.#failed = err;
    this.#chunks = [];
    this.#head = 0;
    this.#offset = 0;
    this.#buffered = 0;
    return err;
  }

  #process(): void {
    if (this.#processing) return; // a sink calling resume(): the outer loop continues
    this.#processing = true;
    try {
      while (!this.#paused) {
        if (this.#header === undefined) {
          if (this.#buffered < HEADER_BYTES) break;
          const hb = this.#take(HEADER_BYTES, this.#headerScratch);
          this.#header = decodeFrameHeader(hb, this.limits);
          this.#headerBytes = hb;
        }
        const need = this.#header.payloadLength + TAG_BYTES;
        if (this.#buffered < need) {
          this.#keepHeader(this.#header);
          break;
        }
        if (this.#admit !== undefined && !this.#admit(this.#header)) {
          this.#keepHeader(this.#header);
          this.#paused = true;
          break;
        }
        const sealed = this.#take(need, this.#scratchFor(need));
        const header = this.#header;
        const headerBytes = this.#headerBytes as Uint8Array;
        this.#header = undefined;
        this.#headerBytes = undefined;
        this.#sink(header, headerBytes, sealed);
      }
    } catch (err) {
      throw this.#fail(err);
    } finally {
      this.#processing = false;
    }
  }

  /**
   * The frame waits (for its body, or to be admitted): only bytes still queued count as
   * referenced (bufferedBytes), so the header, needed later as additional data, must not stay a view.
   */
  #keepHeader(header: FrameHeader): void {
    if (this.#headerBytes === this.#headerScratch) return;
    this.#headerScratch.set(this.#headerBytes as Uint8Array);
    this.#headerBytes = this.#headerScratch;
    header.nonce = this.#headerScratch.subarray(NONCE_OFFSET, NONCE_OFFSET + FRAME_NONCE_BYTES);
  }

  #scratchFor(need: number): Buffer {
    const have = this.#bodyScratch;
    if (have !== undefined && have.byteLength >= need) return have;
    const max = this.limits.maxFramePayload + TAG_BYTES;
    const size = Math.min(max, Math.ceil(need / SCRATCH_STEP) * SCRATCH_STEP);
    this.#bodyScratch = Buffer.allocUnsafe(size);
    return this.#bodyScratch;
  }

  /** Consumes n buffered bytes: a view when they are contiguous, else a copy into scratch. */
  #take(n: number, scratch: Buffer): Uint8Array {
    const first = this.#chunks[this.#head] as Buffer;
    const avail = first.byteLength - this.#offset;
    let out: Uint8Array;
    if (avail >= n) {
      out = first.subarray(this.#offset, this.#offset + n);
      this.#offset += n;
    } else {
      out = scratch.subarray(0, n);
      let filled = 0;
      while (filled < n) {
        const c = this.#chunks[this.#head] as Buffer;
        const m = Math.min(c.byteLength - this.#offset, n - filled);
        c.copy(scratch, filled, this.#offset, this.#offset + m);
        filled += m;
        this.#offset += m;
        if (this.#offset === c.byteLength) this.#dropHead();
      }
    }
    if (this.#head < this.#chunks.length && this.#offset === (this.#chunks[this.#head] as Buffer).byteLength) this.#dropHead();
    this.#buffered -= n;
    return out;
  }

  #dropHead(): void {
    this.#chunks[this.#head] = EMPTY;
    this.#head += 1;
    this.#offset = 0;
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head >= 64) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }
}

const EMPTY = Buffer.alloc(0);
