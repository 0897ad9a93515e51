// What every link does whatever carries its frames: the outbound queue (the scheduler) and its
// 'drain', the pump that turns queued messages into frames, the delivery of messages, counters,
// the tail witness, and the close sequence (a local close bounded by a timeout, the peer's close
// frame, a fatal error, the carrier going away). TCP and RDMA links extend it and differ only in
// how frames are written and read and how the carrier is ended.
//
// Tail witness: the receiver finds a missing frame only when a later one arrives with the next
// sequence number. When the sender goes quiet right after the lost frame (the request, or the
// reply, of a call that now waits for it) nothing later comes, and the call would wait for its
// deadline. So after `tailWitnessMs` without sending, a link that sent anything since its last
// witness sends one REKEY frame (an existing frame type, legal at any frame boundary: no wire
// change). The peer checks its sequence: a gap fails the link at once, and every call on it
// fails with it. Cost: at most one timer and one rekey per quiet period per link.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { LinkRole } from '../crypto/key-schedule.ts';
import { isSluiceError } from '../errors.ts';
import type { LinkScheduler } from '../scheduler/link-scheduler.ts';
import { CloseCode, closeCodeFor, closeCodeName } from '../wire/close-frame.ts';
import { WireError } from '../wire/errors.ts';
import { FrameFlags, FrameType } from '../wire/frame-header.ts';
import type { FrameSealer, FrameSpec } from '../wire/frame-sealer.ts';
import { TransportError, TransportErrorCode } from './errors.ts';
import type { ResolvedLinkTuning } from './link-tuning.ts';
import { toQueuedMessage } from './outbound-message.ts';
import type { ScheduledFrame } from '../scheduler/link-scheduler.ts';
import type { InboundMessage, Link, LinkCloseInfo, LinkStats, OutboundMessage, SegmentName, TrafficClass, TransportKind } from './types.ts';

/** After the close frame (or a fatal error), how long the peer gets to end its side. */
const TEARDOWN_GRACE_MS = 1000;

export type LinkState = 'open' | 'closing' | 'closed';

export interface LinkBaseInit {
  /** The TCP connection: the frames' carrier (TCP) or the side channel that outlives set-up (RDMA). */
  socket: Socket;
  segment: SegmentName;
  role: LinkRole;
  linkId: string;
  tuning: ResolvedLinkTuning;
  sealer: FrameSealer;
  /** Largest frame payload per class on this carrier. */
  frameBytes: Record<TrafficClass, number>;
}

/** The frame that carries one scheduled piece of a message. */
export function dataFrameSpec(f: ScheduledFrame): FrameSpec {
  const m = f.msg;
  return {
    type: FrameType.DATA,
    cls: m.cls,
    flags: (f.first ? FrameFlags.FIRST : 0) | (f.last ? FrameFlags.LAST : 0),
    streamId: m.streamId,
    kind: m.kind,
    tenant: m.tenant,
    messageLength: m.cursor.length,
    parts: f.parts,
    payloadLength: f.length,
  };
}

export abstract class LinkBase extends EventEmitter implements Link {
  readonly id: string;
  readonly segment: SegmentName;
  abstract readonly transport: TransportKind;
  readonly remoteAddress: string;
  readonly role: LinkRole;

  protected readonly socket: Socket;
  protected readonly tuning: ResolvedLinkTuning;
  protected readonly sealer: FrameSealer;
  protected readonly scheduler: LinkScheduler;

  protected state: LinkState = 'open';
  protected info: LinkCloseInfo | undefined;
  /** The close frame has left (TCP: written before the socket's end; RDMA: delivered). */
  protected closeFrameSent = false;

  protected framesSent = 0;
  protected bytesSent = 0;
  protected messagesSent = 0;
  protected rejectedFrames = 0;
  #messagesReceived = 0;

  #pumpScheduled = false;
  #pumpImmediate: NodeJS.Immediate | undefined;
  #needDrain = false;
  #closeTimer: NodeJS.Timeout | undefined;
  #witnessTimer: NodeJS.Timeout | undefined;
  /** When the last frame was handed to the carrier (performance.now()). */
  #lastSendAt = 0;
  /** The sealer's sequence when the last witness went out (or nothing needed one). */
  #witnessedSequence = 0;
  #teardownTimer: NodeJS.Timeout | undefined;
  readonly #closed: Promise<void>;
  #resolveClosed!: () => void;

  constructor(init: LinkBaseInit) {
    super();
    const { socket } = init;
    this.socket = socket;
    this.tuning = init.tuning;
    this.segment = init.segment;
    this.role = init.role;
    this.id = init.linkId;
    this.sealer = init.sealer;
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.scheduler = init.tuning.scheduler({ frameBytes: init.frameBytes, wake: () => this.schedulePump() });
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 15_000);
  }

  // ---- what a carrier provides ----

  /**
   * Writes frames while the carrier takes them (sealing the scheduler's next frames); true when
   * a byte budget for this turn ran out with frames still queued and writable, so the pump runs
   * again on the next turn of the event loop.
   */
  protected abstract pumpFrames(): boolean;
  /** Bytes accepted by send() but not yet taken by the carrier, beyond the scheduler's. */
  protected abstract carrierQueuedBytes(): number;
  /** Frames, bytes and rekeys received so far. */
  protected abstract receiveCounts(): { framesReceived: number; bytesReceived: number; rekeys: number };
  /** Stops taking in frames: nothing may follow a close frame or a fatal error. */
  protected abstract stopReading(): void;
  /** After a fatal error: tells the peer (a close frame) if the carrier still can, and ends it. */
  protected abstract closeAfterFailure(code: number, reason: string): void;
  /** ' mid-message (...)' or '' : what the peer left half sent, for the error that it went away. */
  protected abstract describePartial(): string;
  /** Frees the carrier's resources once the link is closed (keys, buffers, queue pair). */
  protected abstract releaseCarrier(): void;
  /**
   * Sends a REKEY frame now as the tail witness (see the header); false when the carrier cannot
   * at the moment (blocked, closing) or needs none (a reliable carrier that cannot drop one
   * frame alone): the next send arms the timer again.
   */
  protected sendTailWitness(): boolean {
    return false;
  }

  abstract pause(): void;
  abstract resume(): void;

  // ---- state ----

  get closed(): boolean {
    return this.state !== 'open';
  }

  /** Resolves when the link has closed and released its carrier. */
  get whenClosed(): Promise<void> {
    return this.#closed;
  }

  stats(): LinkStats {
    const r = this.receiveCounts();
    return {
      framesSent: this.framesSent,
      framesReceived: r.framesReceived,
      bytesSent: this.bytesSent,
      bytesReceived: r.bytesReceived,
      messagesSent: this.messagesSent,
      messagesReceived: this.#messagesReceived,
      queuedBytes: this.queuedBytes(),
      rejectedFrames: this.rejectedFrames,
      rekeys: this.sealer.rekeys + r.rekeys,
    };
  }

  protected queuedBytes(): number {
    return this.scheduler.queuedBytes + this.carrierQueuedBytes();
  }

  // ---- sending ----

  send(msg: OutboundMessage): boolean {
    if (this.state !== 'open') {
      throw new TransportError(TransportErrorCode.LINK_CLOSED, `link ${this.id} to ${this.remoteAddress} is ${this.state}`);
    }
    this.scheduler.enqueue(toQueuedMessage(msg, this.segment, this.tuning.maxMessageBytes));
    this.schedulePump();
    const ok = this.queuedBytes() < this.tuning.highWaterMark;
    if (!ok) this.#needDrain = true;
    return ok;
  }

  protected schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    // Sends in the same turn are gathered into one pass (one write on TCP).
    process.nextTick(this.pump);
  }

  /** Runs the pump now (the carrier has room again). */
  protected readonly pump = (): void => {
    this.#pumpScheduled = false;
    this.#pumpImmediate = undefined;
    if (this.pumpFrames() && this.#pumpImmediate === undefined) {
      this.#pumpImmediate = setImmediate(this.pump); // budget spent: let the loop breathe
    }
    this.maybeDrain();
  };

  /** Runs the pump on the next turn of the event loop (not in this one). */
  protected pumpNextTurn(): void {
    if (this.#pumpImmediate === undefined) this.#pumpImmediate = setImmediate(this.pump);
  }

  protected maybeDrain(): void {
    if (this.#needDrain && this.state === 'open' && this.queuedBytes() <= this.tuning.highWaterMark / 2) {
      this.#needDrain = false;
      this.emit('drain');
    }
  }

  /** Counts a frame handed to the carrier. */
  protected countSent(bytes: number): void {
    this.framesSent += 1;
    this.bytesSent += bytes;
    if (this.tuning.tailWitnessMs > 0) {
      this.#lastSendAt = performance.now();
      if (this.#witnessTimer === undefined) this.#armWitness(this.tuning.tailWitnessMs);
    }
  }

  #armWitness(ms: number): void {
    this.#witnessTimer = setTimeout(this.#onWitnessTimer, ms);
    this.#witnessTimer.unref();
  }

  readonly #onWitnessTimer = (): void => {
    this.#witnessTimer = undefined;
    if (this.state !== 'open' || this.sealer.sequence === this.#witnessedSequence) return;
    const quietFor = performance.now() - this.#lastSendAt;
    if (quietFor < this.tuning.tailWitnessMs) {
      this.#armWitness(this.tuning.tailWitnessMs - quietFor);
      return;
    }
    // The witness is a frame too: countSent() re-arms the timer, which then finds nothing new.
    if (this.sendTailWitness()) this.#witnessedSequence = this.sealer.sequence;
  };

  // ---- receiving ----

  protected deliver(msg: InboundMessage): void {
    this.#messagesReceived += 1;
    // Nobody will see it: a pooled slab goes straight back.
    if (this.state === 'closed' || this.listenerCount('message') === 0) {
      msg.release?.();
      return;
    }
    try {
      this.emit('message', msg);
    } catch (err) {
      // A listener's bug is the application's: surface it, keep the link's state intact.
      process.nextTick(() => {
        throw err;
      });
    }
  }

  // ---- closing ----

  close(reason = 'closed by the application'): Promise<void> {
    if (this.state !== 'open') return this.#closed;
    this.state = 'closing';
    this.info = { by: 'local', code: CloseCode.NORMAL, reason };
    this.#closeTimer = setTimeout(() => {
      // The peer did not take our queued messages in time: give up on them.
      this.dropQueued();
      this.socket.destroy();
    }, this.tuning.closeTimeoutMs);
    this.#closeTimer.unref();
    this.schedulePump();
    return this.#closed;
  }

  protected dropQueued(): void {
    for (const m of this.scheduler.clear()) m.bodyReleased?.();
  }

  /** Ends our side of the socket (after the close frame, or to answer the peer's). */
  protected endSocket(): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.end();
  }

  protected armTeardown(): void {
    if (this.#teardownTimer !== undefined) return;
    this.#teardownTimer = setTimeout(() => this.socket.destroy(), TEARDOWN_GRACE_MS);
    this.#teardownTimer.unref();
  }

  /** The peer's close frame arrived. */
  protected onPeerClose(code: number, reason: string): void {
    if (this.state === 'closed') return;
    if (this.info === undefined || (this.info.by === 'local' && !this.closeFrameSent)) {
      this.info = { by: 'peer', code, reason: reason === '' ? closeCodeName(code) : reason };
    }
    this.state = 'closing';
    this.dropQueued();
    this.stopReading(); // nothing may follow a close frame
    this.endSocket();
    this.armTeardown();
  }

  /** True when the link is already ending cleanly: a failure now is not news. */
  protected get endingCleanly(): boolean {
    return this.info !== undefined && (this.info.by === 'peer' || this.closeFrameSent);
  }

  /** Ends the link because of `err`, telling the peer why when the carrier still can. */
  protected fail(err: unknown): void {
    if (this.state === 'closed') return;
    if (this.endingCleanly) {
      this.socket.destroy();
      return;
    }
    const error = err instanceof Error ? err : new Error(String(err));
    if (err instanceof WireError) this.rejectedFrames += 1;
    const code = closeCodeFor(err);
    this.info = { by: 'error', code, reason: error.message, error };
    this.state = 'closing';
    this.dropQueued();
    this.stopReading();
    this.closeAfterFailure(code, isSluiceError(err) ? error.message : 'internal error');
    this.armTeardown();
  }

  protected peerGone(what: string, cause?: Error): TransportError {
    return new TransportError(TransportErrorCode.PEER_GONE, `peer ${this.remoteAddress} on the ${this.segment} segment ${what}${this.describePartial()}`, { cause });
  }

  /** The socket closed: the link is over. `lost` says why when nobody has said it yet. */
  protected socketClosed(lost?: Error): void {
    if (this.state === 'closed') return;
    if (this.info === undefined || (this.info.by === 'local' && !this.closeFrameSent)) {
      const err = lost ?? this.peerGone('connection closed');
      if (this.info?.by === 'local') this.info = { by: 'error', code: CloseCode.INTERNAL_ERROR, reason: `close timed out: ${err.message}`, error: err };
      else this.info = { by: 'error', code: CloseCode.INTERNAL_ERROR, reason: err.message, error: err };
    }
    this.state = 'closed';
    clearTimeout(this.#closeTimer);
    clearTimeout(this.#witnessTimer);
    clearTimeout(this.#teardownTimer);
    if (this.#pumpImmediate !== undefined) clearImmediate(this.#pumpImmediate);
    this.dropQueued();
    this.sealer.destroy();
    this.releaseCarrier();
    const info = this.info;
    this.emit('close', info);
    this.#resolveClosed();
  }
}
