// The receiving half of a link, independent of how bytes arrive: splits them into frames,
// authenticates and decrypts each one straight into its message buffer, rebuilds messages,
// and applies REKEY and CLOSE frames. Every rejection is a WireError thrown from push().
// With a receive pool, a frame that starts a pooled message while the pool is empty is left
// unread (the receiver reports itself starved, the carrier stops reading) until a slab is back.
import type { TrafficKeys } from '../crypto/traffic-keys.ts';
import type { InboundMessage, SegmentName } from '../transport/types.ts';
import { decodeClosePayload } from './close-frame.ts';
import { FrameDecoder } from './frame-decoder.ts';
import { FrameType, MAX_FRAME_PAYLOAD, frameBytes, type FrameHeader } from './frame-header.ts';
import { FrameOpener } from './frame-opener.ts';
import { Reassembler, type PooledReassembly } from './reassembler.ts';

export interface FrameReceiverOptions {
  segment: SegmentName;
  keys: TrafficKeys;
  maxMessageBytes: number;
  maxReassemblyBytes: number;
  maxPendingMessages: number;
  /** Default MAX_FRAME_PAYLOAD. */
  maxFramePayload?: number;
  /** Rebuild messages of this class in pooled slabs (see reassembler.ts). */
  pooled?: PooledReassembly;
}

export interface FrameReceiverEvents {
  message(msg: InboundMessage): void;
  /** The peer closed the link; nothing after this frame is read. */
  close(code: number, reason: string): void;
  /** The receive pool ran dry (starved: true; stop reading) or has a slab again (false; reading may go on). */
  starved?(starved: boolean): void;
  /** A WireError found while resuming on a slab's return (outside push()). */
  error?(err: unknown): void;
}

export class FrameReceiver {
  readonly #decoder: FrameDecoder;
  readonly #opener: FrameOpener;
  readonly #reassembler: Reassembler;
  readonly #events: FrameReceiverEvents;
  #frames = 0;
  #bytes = 0;
  #rekeys = 0;
  #closed = false;
  #appPaused = false;
  #starved = false;

  constructor(opts: FrameReceiverOptions, events: FrameReceiverEvents) {
    this.#events = events;
    this.#opener = new FrameOpener(opts.keys);
    this.#reassembler = new Reassembler(
      {
        maxMessageBytes: opts.maxMessageBytes,
        maxPendingBytes: opts.maxReassemblyBytes,
        maxPendingMessages: opts.maxPendingMessages,
      },
      opts.pooled,
    );
    this.#decoder = new FrameDecoder(
      { segment: opts.segment, maxFramePayload: opts.maxFramePayload ?? MAX_FRAME_PAYLOAD, maxMessageBytes: opts.maxMessageBytes },
      (h, hb, sealed) => this.#onFrame(h, hb, sealed),
      opts.pooled !== undefined ? this.#admit : undefined,
    );
  }

  get framesReceived(): number {
    return this.#frames;
  }

  /** Wire bytes of the frames accepted so far. */
  get bytesReceived(): number {
    return this.#bytes;
  }

  get rekeys(): number {
    return this.#rekeys;
  }

  get paused(): boolean {
    return this.#decoder.paused;
  }

  /** True while waiting for a slab of the receive pool. */
  get starved(): boolean {
    return this.#starved;
  }

  /** True when the stream stopped inside a frame or a message. */
  get midFrame(): boolean {
    return this.#decoder.midFrame;
  }

  /** Bytes of the pushed chunks still referenced (not yet consumed): the caller must not reuse them. */
  get retainedBytes(): number {
    return this.#decoder.bufferedBytes;
  }

  /** Memory held: decoder buffers plus partly received messages. */
  get heldBytes(): number {
    return this.#decoder.bufferedBytes + this.#decoder.scratchBytes + this.#reassembler.pendingBytes;
  }

  describePending(): string | undefined {
    return this.#reassembler.describePending();
  }

  /** Takes the next bytes of the stream. Throws WireError. */
  push(chunk: Buffer): void {
    if (this.#closed) return;
    this.#decoder.push(chunk);
  }

  /** The stream ended; throws TRUNCATED if it ended inside a frame. */
  end(): void {
    if (!this.#closed) this.#decoder.end();
  }

  pause(): void {
    this.#appPaused = true;
    this.#decoder.pause();
  }

  resume(): void {
    this.#appPaused = false;
    if (!this.#closed && !this.#starved) this.#decoder.resume();
  }

  /** Stops for good (after a close or an error): later bytes are ignored. */
  stop(): void {
    this.#closed = true;
    this.#decoder.pause();
    if (this.#starved) {
      this.#starved = false;
      this.#reassembler.pool?.cancelWait(this.#onSlab);
    }
  }

  /** Stops and gives back every slab it holds (partly received messages). */
  destroy(): void {
    this.stop();
    this.#reassembler.clear();
    this.#opener.destroy();
  }

  readonly #admit = (h: FrameHeader): boolean => {
    if (h.type !== FrameType.DATA || this.#closed || !this.#reassembler.waitsForSlab(h)) return true;
    this.#starved = true;
    this.#reassembler.pool?.whenAvailable(this.#onSlab);
    this.#events.starved?.(true);
    return false;
  };

  readonly #onSlab = (): void => {
    if (!this.#starved || this.#closed) return;
    this.#starved = false;
    if (!this.#appPaused) {
      try {
        this.#decoder.resume();
      } catch (err) {
        this.#events.error?.(err);
        return;
      }
    }
    // Resuming may have run dry again at once: then reading stays stopped.
    if (!this.#starved && !this.#closed) this.#events.starved?.(false);
  };

  #onFrame(h: FrameHeader, headerBytes: Uint8Array, sealed: Uint8Array): void {
    if (h.type === FrameType.DATA) {
      this.#opener.check(h); // replays and foreign keys first, then fragment order
      const target = this.#reassembler.target(h);
      try {
        this.#opener.open(h, headerBytes, sealed, target);
      } catch (err) {
        this.#reassembler.abandon();
        throw err;
      }
      this.#count(h);
      const msg = this.#reassembler.commit(h);
      if (msg !== undefined) this.#events.message(msg);
      return;
    }
    const payload = Buffer.allocUnsafe(h.payloadLength);
    this.#opener.open(h, headerBytes, sealed, payload);
    this.#count(h);
    if (h.type === FrameType.REKEY) {
      this.#opener.applyRekey(payload);
      this.#rekeys += 1;
      return;
    }
    const { code, reason } = decodeClosePayload(payload);
    this.stop();
    this.#events.close(code, reason);
  }

  #count(h: FrameHeader): void {
    this.#frames += 1;
    this.#bytes += frameBytes(h.payloadLength);
  }
}
