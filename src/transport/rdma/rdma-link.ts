// A link over an RC queue pair, after set-up. The frame format, keys, scheduler and
// reassembly are the TCP link's; only the carrier differs. Outbound: a frame is sealed
// straight into a registered send slot (the one copy of the caller's bytes) when the queue pair
// has a credit and a free slot, and posted by slot index. Inbound: each SEND holds one frame,
// which is authenticated and decrypted straight out of its registered receive slot into the
// message buffer (the one copy); the slot is reposted at once, which returns its credit.
// pause() holds received slots unopened, so the peer runs out of credit and backs up.
// With a receive pool (the training thread's links), training messages are decrypted into the
// pool's slabs; a frame that starts one while every slab is lent out is held the same way
// (unopened, its credit kept) until a slab comes back.
// The TCP side channel carries nothing after set-up: its end tells that the peer is gone.
// Queueing, delivery and the close sequence are LinkBase's.
import type { Socket } from 'node:net';
import type { LinkRole } from '../../crypto/key-schedule.ts';
import type { ScheduledFrame } from '../../scheduler/link-scheduler.ts';
import { closeFrameSpec, decodeClosePayload } from '../../wire/close-frame.ts';
import { WireError, WireErrorCode } from '../../wire/errors.ts';
import { decodeFrameHeader, FrameType, frameBytes, HEADER_BYTES, type FrameHeader } from '../../wire/frame-header.ts';
import type { FrameOpener } from '../../wire/frame-opener.ts';
import type { FrameSealer, FrameSpec } from '../../wire/frame-sealer.ts';
import { Reassembler } from '../../wire/reassembler.ts';
import { dataFrameSpec, LinkBase } from '../link-base.ts';
import type { ResolvedLinkTuning } from '../link-tuning.ts';
import type { InboundMessage, SegmentName, TrafficClass } from '../types.ts';
import type { RdmaError } from './rdma-errors.ts';
import type { VerbsFault } from './verbs-addon.ts';
import type { VerbsChannel } from './verbs-channel.ts';

/** Bytes sealed per turn of the event loop before yielding, so receiving is never starved. */
const PUMP_BYTES_PER_TURN = 4 * 1024 * 1024;

export interface RdmaLinkInit {
  socket: Socket;
  channel: VerbsChannel;
  segment: SegmentName;
  role: LinkRole;
  linkId: string;
  sealer: FrameSealer;
  opener: FrameOpener;
  tuning: ResolvedLinkTuning;
  /** The device the queue pair is on, for logs and stats. */
  device: string;
}

interface HeldSlot {
  slot: number;
  length: number;
}

/** Largest frame payload that fits `slotBytes` with its header and tag. */
export function payloadCapacity(slotBytes: number): number {
  return slotBytes - frameBytes(0);
}

/** Frame sizes of the tuning, each cut to what the peer's receive slots hold. */
function fittedFrameBytes(tuning: ResolvedLinkTuning, channel: VerbsChannel): Record<TrafficClass, number> {
  const fit = payloadCapacity(channel.maxSendBytes);
  const sizes = {} as Record<TrafficClass, number>;
  for (const [cls, n] of Object.entries(tuning.frameBytes) as [TrafficClass, number][]) sizes[cls] = Math.min(n, fit);
  return sizes;
}

export class RdmaLink extends LinkBase {
  readonly transport = 'rdma' as const;
  readonly device: string;

  /** The GRH traffic class of this link's queue pair, read back from the device (ibv_query_qp). */
  get trafficClass(): number {
    return this.#channel.queryTrafficClass();
  }

  readonly #channel: VerbsChannel;
  readonly #opener: FrameOpener;
  readonly #reassembler: Reassembler;
  readonly #maxReceivePayload: number;

  /** A frame taken from the scheduler that waits for a credit (after a rekey took the last one). */
  #pendingFrame: ScheduledFrame | undefined;
  #closeWanted: { code: number; reason: string } | undefined;
  #closeSlot: number | undefined;
  #readingStopped = false;
  #paused = false;
  /** Waiting for a slab of the receive pool: received slots are held, as when paused. */
  #starved = false;
  readonly #held: HeldSlot[] = [];
  /** The side channel ended (or failed) while received frames were held: handled on resume. */
  #sideChannelGone: Error | undefined;

  #framesReceived = 0;
  #bytesReceived = 0;
  #rekeysReceived = 0;

  constructor(init: RdmaLinkInit) {
    const { socket, channel, tuning } = init;
    // Frames must fit the peer's receive slots, whatever the tuning says.
    super({ socket, segment: init.segment, role: init.role, linkId: init.linkId, tuning, sealer: init.sealer, frameBytes: fittedFrameBytes(tuning, channel) });
    this.#channel = channel;
    this.device = init.device;
    this.#opener = init.opener;
    this.#maxReceivePayload = payloadCapacity(channel.options.slotBytes);
    this.#reassembler = new Reassembler(
      {
        maxMessageBytes: tuning.maxMessageBytes,
        maxPendingBytes: tuning.maxReassemblyBytes,
        maxPendingMessages: tuning.maxPendingMessages,
      },
      tuning.receivePool !== undefined ? { pool: tuning.receivePool, cls: 'training' } : undefined,
    );

    socket.on('data', this.#onSideData);
    socket.on('end', this.#onSideEnd);
    socket.on('error', this.#onSideError);
    socket.on('close', this.#onSideClose);
    socket.resume();
    // Deliver on the next turn, so whoever receives this link can attach 'message' first.
    setImmediate(() => {
      if (this.state === 'closed') return;
      channel.attach({
        onReceive: this.#onReceive,
        onSendComplete: this.#onSendComplete,
        onProgress: this.#onProgress,
        onError: this.#onChannelError,
      });
    });
  }

  protected receiveCounts(): { framesReceived: number; bytesReceived: number; rekeys: number } {
    return { framesReceived: this.#framesReceived, bytesReceived: this.#bytesReceived, rekeys: this.#rekeysReceived };
  }

  /** Queue pair counters (credits, sends in flight, credit messages), for diagnostics. */
  verbsCounters(): ReturnType<VerbsChannel['counters']> {
    return this.#channel.counters();
  }

  protected carrierQueuedBytes(): number {
    return this.#pendingFrame?.length ?? 0;
  }

  // ---- sending ----

  protected pumpFrames(): boolean {
    if (this.state === 'closed' || this.closeFrameSent || this.#closeSlot !== undefined) return false;
    const ch = this.#channel;
    let budget = this.scheduler.turnBytes?.() ?? PUMP_BYTES_PER_TURN; // shorter turns for bulk while inference runs
    try {
      if (this.#closeWanted === undefined) {
        while (budget > 0 && ch.writable) {
          const f = this.#pendingFrame ?? this.scheduler.next();
          this.#pendingFrame = undefined;
          if (f === undefined) break;
          if (this.sealer.rekeyDue(f.length)) {
            this.#postFrame(this.sealer.sealRekey());
            if (!ch.writable) {
              this.#pendingFrame = f;
              break;
            }
          }
          try {
            budget -= this.#sealAndPost(dataFrameSpec(f));
          } finally {
            if (f.last) f.msg.bodyReleased?.();
          }
          if (f.last) this.messagesSent += 1;
        }
        if (this.info?.by === 'local' && this.#pendingFrame === undefined && this.scheduler.queuedMessages === 0) {
          this.#closeWanted = { code: this.info.code, reason: this.info.reason };
        }
      }
      if (this.#closeWanted !== undefined) this.#trySendCloseFrame();
    } catch (err) {
      this.fail(err);
      return false;
    }
    return budget <= 0 && ch.writable;
  }

  /** Seals one frame into a free send slot and posts it; returns its wire size. */
  #sealAndPost(spec: FrameSpec): number {
    const ch = this.#channel;
    const slot = ch.acquire() as number;
    let size: number;
    try {
      size = this.sealer.sealInto(spec, ch.sendSlot(slot), 0);
    } catch (err) {
      ch.release(slot);
      throw err;
    }
    ch.post(slot, size);
    this.countSent(size);
    return size;
  }

  /** Posts a frame sealed elsewhere (a rekey: rare, so its extra copy does not matter). */
  #postFrame(frame: Buffer): number {
    const ch = this.#channel;
    const slot = ch.acquire() as number;
    frame.copy(ch.sendSlot(slot));
    ch.post(slot, frame.byteLength);
    this.countSent(frame.byteLength);
    return slot;
  }

  /** Posts the close frame once a credit allows; the side channel ends when it has been delivered. */
  #trySendCloseFrame(): void {
    const want = this.#closeWanted;
    if (want === undefined || this.#closeSlot !== undefined || this.closeFrameSent) return;
    const ch = this.#channel;
    if (ch.failed || ch.closed) {
      this.closeFrameSent = true;
      this.endSocket();
      return;
    }
    if (!ch.writable) return; // onProgress retries; the teardown timer bounds the wait
    const frame = this.sealer.seal(closeFrameSpec(want.code, want.reason));
    this.#closeSlot = this.#postFrame(frame);
    this.armTeardown();
  }

  readonly #onSendComplete = (slot: number): void => {
    if (slot === this.#closeSlot) {
      // The peer's queue pair has the close frame: now end the side channel behind it.
      this.#closeSlot = undefined;
      this.closeFrameSent = true;
      this.endSocket();
    }
  };

  readonly #onProgress = (): void => {
    if (this.state === 'closed') return;
    if (this.#closeWanted !== undefined) this.#trySendCloseFrame();
    else if (this.#channel.writable && (this.#pendingFrame !== undefined || this.scheduler.queuedMessages > 0)) this.pump();
    else this.maybeDrain();
  };

  protected closeAfterFailure(code: number, reason: string): void {
    this.#closeWanted ??= { code, reason };
    try {
      this.#trySendCloseFrame();
    } catch {
      // Sealing itself failed: the side channel's end says enough.
      this.endSocket();
    }
  }

  // ---- receiving ----

  readonly #onReceive = (slot: number, data: Buffer): void => {
    if (this.#paused || this.#starved || this.#held.length > 0) {
      this.#held.push({ slot, length: data.byteLength });
      return;
    }
    if (!this.#consume(slot, data)) this.#held.push({ slot, length: data.byteLength });
  };

  /** False when the frame waits for a slab of the receive pool (the caller holds its slot). */
  #consume(slot: number, data: Buffer): boolean {
    if (this.#readingStopped || this.state === 'closed') {
      this.#repost(slot); // nothing may follow a close frame: drop it
      return true;
    }
    let msg: InboundMessage | undefined;
    try {
      const h = decodeFrameHeader(data, { segment: this.segment, maxFramePayload: this.#maxReceivePayload, maxMessageBytes: this.tuning.maxMessageBytes });
      if (data.byteLength !== frameBytes(h.payloadLength)) {
        throw new WireError(WireErrorCode.MALFORMED, `a SEND of ${data.byteLength} bytes holds a frame of ${frameBytes(h.payloadLength)}`);
      }
      if (h.type === FrameType.DATA && this.#reassembler.waitsForSlab(h)) {
        this.#starved = true;
        this.tuning.receivePool?.whenAvailable(this.#onSlab);
        return false;
      }
      this.#framesReceived += 1;
      this.#bytesReceived += data.byteLength;
      msg = this.#openFrame(h, data);
    } catch (err) {
      this.fail(err);
      return true;
    }
    if (!this.#repost(slot)) return true;
    if (msg !== undefined) this.deliver(msg);
    return true;
  }

  readonly #onSlab = (): void => {
    if (!this.#starved || this.state === 'closed') return;
    this.#starved = false;
    this.#consumeHeld();
  };

  /**
   * Hands a receive slot back. A failed post (the verbs call, or a bad slot) fails this link:
   * thrown from here it would unwind into the addon's completion callback, which used to end
   * the process. False when the link failed.
   */
  #repost(slot: number): boolean {
    try {
      this.#channel.repost(slot);
      return true;
    } catch (err) {
      this.fail(err);
      return false;
    }
  }

  /** Test-only: makes the next poll, CQ re-arm or receive post of this link's queue pair fail (SLUICE_VERBS_FAULT_INJECTION=1). */
  injectVerbsFault(kind: VerbsFault): void {
    this.#channel.injectFault(kind);
  }

  #openFrame(h: FrameHeader, data: Buffer): InboundMessage | undefined {
    const headerBytes = data.subarray(0, HEADER_BYTES);
    const sealed = data.subarray(HEADER_BYTES);
    if (h.type === FrameType.DATA) {
      this.#opener.open(h, headerBytes, sealed, this.#reassembler.target(h));
      return this.#reassembler.commit(h);
    }
    const payload = Buffer.allocUnsafe(h.payloadLength);
    this.#opener.open(h, headerBytes, sealed, payload);
    if (h.type === FrameType.REKEY) {
      this.#opener.applyRekey(payload);
      this.#rekeysReceived += 1;
    } else {
      const { code, reason } = decodeClosePayload(payload);
      this.onPeerClose(code, reason);
    }
    return undefined;
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (!this.#starved) this.#consumeHeld();
  }

  /** Opens the held slots in order, until paused or starved again. */
  #consumeHeld(): void {
    const slotBytes = this.#channel.options.slotBytes;
    while (!this.#paused && !this.#starved && this.#held.length > 0 && this.state !== 'closed') {
      const { slot, length } = this.#held[0] as HeldSlot;
      if (!this.#consume(slot, this.#channel.recvPool.subarray(slot * slotBytes, slot * slotBytes + length))) return;
      this.#held.shift();
    }
    if (!this.#paused && !this.#starved && this.#held.length === 0 && this.#sideChannelGone !== undefined) {
      const err = this.#sideChannelGone;
      this.#sideChannelGone = undefined;
      this.#sideChannelLost(err);
    }
  }

  protected stopReading(): void {
    this.#readingStopped = true;
  }

  // ---- closing ----

  protected override dropQueued(): void {
    super.dropQueued();
    // A last frame held back for a send slot has already left the scheduler.
    if (this.#pendingFrame?.last === true) this.#pendingFrame.msg.bodyReleased?.();
    this.#pendingFrame = undefined;
  }

  protected describePartial(): string {
    const pending = this.#reassembler.describePending();
    return pending !== undefined ? ` mid-message (${pending})` : '';
  }

  readonly #onChannelError = (err: RdmaError): void => {
    if (this.endingCleanly) {
      // The peer tore down its queue pair after the close: expected.
      this.socket.destroy();
      return;
    }
    this.fail(err);
  };

  readonly #onSideData = (): void => {
    this.fail(new WireError(WireErrorCode.MALFORMED, `${this.remoteAddress} sent data on the RDMA side channel after set-up`));
  };

  /** The side channel ended or failed: first take in what the queue pair already holds. */
  #sideChannelLost(err: Error): void {
    this.#channel.pollNow();
    if (this.#paused || this.#held.length > 0) {
      this.#sideChannelGone ??= err;
      return;
    }
    if (this.endingCleanly) {
      this.endSocket();
      return;
    }
    this.fail(err);
    this.socket.destroy();
  }

  readonly #onSideEnd = (): void => {
    this.#sideChannelLost(this.peerGone('closed the connection without a close frame'));
  };

  readonly #onSideError = (err: NodeJS.ErrnoException): void => {
    this.#sideChannelLost(this.peerGone(`connection failed (${err.code ?? err.message})`, err));
  };

  readonly #onSideClose = (): void => this.socketClosed(this.#sideChannelGone);

  protected releaseCarrier(): void {
    if (this.#starved) {
      this.#starved = false;
      this.tuning.receivePool?.cancelWait(this.#onSlab);
    }
    this.#held.length = 0;
    this.#reassembler.clear();
    this.#channel.close();
    this.#opener.destroy();
    this.socket.off('data', this.#onSideData);
  }
}
