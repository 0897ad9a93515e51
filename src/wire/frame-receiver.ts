// The receiving half of a link, independent of how bytes arrive: splits them into frames,
// authenticates and decrypts each one straight into its message buffer, rebuilds messages,
// and applies REKEY and CLOSE frames. Every rejection is a WireError thrown from push().
import type { TrafficKeys } from '../crypto/traffic-keys.ts';
import type { InboundMessage, SegmentName } from '../transport/types.ts';
import { decodeClosePayload } from './close-frame.ts';
import { FrameDecoder } from './frame-decoder.ts';
import { FrameType, MAX_FRAME_PAYLOAD, frameBytes, type FrameHeader } from './frame-header.ts';
import { FrameOpener } from './frame-opener.ts';
import { Reassembler } from './reassembler.ts';

export interface FrameReceiverOptions {
  segment: SegmentName;
  keys: TrafficKeys;
  maxMessageBytes: number;
  maxReassemblyBytes: number;
  maxPendingMessages: number;
  /** Default MAX_FRAME_PAYLOAD. */
  maxFramePayload?: number;
}

export interface FrameReceiverEvents {
  message(msg: InboundMessage): void;
  /** The peer closed the link; nothing after this frame is read. */
  close(code: number, reason: string): void;
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

  constructor(opts: FrameReceiverOptions, events: FrameReceiverEvents) {
    this.#events = events;
    this.#opener = new FrameOpener(opts.keys);
    this.#reassembler = new Reassembler({
      maxMessageBytes: opts.maxMessageBytes,
      maxPendingBytes: opts.maxReassemblyBytes,
      maxPendingMessages: opts.maxPendingMessages,
    });
    this.#decoder = new FrameDecoder(
      { segment: opts.segment, maxFramePayload: opts.maxFramePayload ?? MAX_FRAME_PAYLOAD, maxMessageBytes: opts.maxMessageBytes },
      (h, hb, sealed) => this.#onFrame(h, hb, sealed),
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
    this.#decoder.pause();
  }

  resume(): void {
    if (!this.#closed) this.#decoder.resume();
  }

  /** Stops for good (after a close or an error): later bytes are ignored. */
  stop(): void {
    this.#closed = true;
    this.#decoder.pause();
  }

  destroy(): void {
    this.stop();
    this.#reassembler.clear();
    this.#opener.destroy();
  }

  #onFrame(h: FrameHeader, headerBytes: Uint8Array, sealed: Uint8Array): void {
    if (h.type === FrameType.DATA) {
      this.#opener.check(h); // replays and foreign keys first, then fragment order
      const target = this.#reassembler.target(h);
      this.#opener.open(h, headerBytes, sealed, target);
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
