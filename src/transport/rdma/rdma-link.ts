// A link over an RC queue pair, after set-up. The frame format, keys, scheduler and
// reassembly are the TCP link's; only the carrier differs. Outbound: a frame is sealed
// straight into a registered send slot (the one copy of the caller's bytes) when the queue pair
// has a credit and a free slot, and posted by slot index. Inbound: each SEND holds one frame,
// which is authenticated and decrypted straight out of its registered receive slot into the
// message buffer (the one copy); the slot is reposted at once, which returns its credit.
// pause() holds received slots unopened, so the peer runs out of credit and backs up.
// The TCP side channel carries nothing after set-up: its end tells that the peer is gone.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { LinkRole } from '../../crypto/key-schedule.ts';
import { isSluiceError } from '../../errors.ts';
import type { LinkScheduler, ScheduledFrame } from '../../scheduler/link-scheduler.ts';
import { CloseCode, closeCodeFor, closeCodeName, decodeClosePayload, encodeClosePayload } from '../../wire/close-frame.ts';
import { WireError, WireErrorCode } from '../../wire/errors.ts';
import { decodeFrameHeader, FrameFlags, FrameType, frameBytes, HEADER_BYTES, type FrameHeader } from '../../wire/frame-header.ts';
import type { FrameOpener } from '../../wire/frame-opener.ts';
import type { FrameSealer, FrameSpec } from '../../wire/frame-sealer.ts';
import { Reassembler } from '../../wire/reassembler.ts';
import { TransportError, TransportErrorCode } from '../errors.ts';
import type { ResolvedLinkTuning } from '../link-tuning.ts';
import { toQueuedMessage } from '../outbound-message.ts';
import type { InboundMessage, Link, LinkCloseInfo, LinkStats, OutboundMessage, SegmentName, TrafficClass } from '../types.ts';
import type { RdmaError } from './rdma-errors.ts';
import type { VerbsChannel } from './verbs-channel.ts';

/** After the close frame (or a fatal error), how long the peer gets to end its side. */
const TEARDOWN_GRACE_MS = 1000;
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

type State = 'open' | 'closing' | 'closed';

interface HeldSlot {
  slot: number;
  length: number;
}

/** Largest frame payload that fits `slotBytes` with its header and tag. */
export function payloadCapacity(slotBytes: number): number {
  return slotBytes - frameBytes(0);
}

export class RdmaLink extends EventEmitter implements Link {
  readonly id: string;
  readonly segment: SegmentName;
  readonly transport = 'rdma' as const;
  readonly remoteAddress: string;
  readonly role: LinkRole;
  readonly device: string;

  readonly #socket: Socket;
  readonly #channel: VerbsChannel;
  readonly #tuning: ResolvedLinkTuning;
  readonly #sealer: FrameSealer;
  readonly #opener: FrameOpener;
  readonly #reassembler: Reassembler;
  readonly #scheduler: LinkScheduler;
  readonly #maxReceivePayload: number;

  #state: State = 'open';
  #info: LinkCloseInfo | undefined;
  /** A frame taken from the scheduler that waits for a credit (after a rekey took the last one). */
  #pendingFrame: ScheduledFrame | undefined;
  #closeWanted: { code: number; reason: string } | undefined;
  #closeSlot: number | undefined;
  #closeFrameSent = false;
  #readingStopped = false;
  #paused = false;
  readonly #held: HeldSlot[] = [];
  /** The side channel ended (or failed) while received frames were held: handled on resume. */
  #sideChannelGone: Error | undefined;
  #pumpScheduled = false;
  #pumpImmediate: NodeJS.Immediate | undefined;
  #needDrain = false;
  #closeTimer: NodeJS.Timeout | undefined;
  #teardownTimer: NodeJS.Timeout | undefined;
  readonly #closed: Promise<void>;
  #resolveClosed!: () => void;

  #framesSent = 0;
  #framesReceived = 0;
  #bytesSent = 0;
  #bytesReceived = 0;
  #messagesSent = 0;
  #messagesReceived = 0;
  #rejectedFrames = 0;
  #rekeysReceived = 0;

  constructor(init: RdmaLinkInit) {
    super();
    const { socket, channel, tuning } = init;
    this.#socket = socket;
    this.#channel = channel;
    this.#tuning = tuning;
    this.segment = init.segment;
    this.role = init.role;
    this.id = init.linkId;
    this.device = init.device;
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.#sealer = init.sealer;
    this.#opener = init.opener;
    this.#maxReceivePayload = payloadCapacity(channel.options.slotBytes);
    this.#reassembler = new Reassembler({
      maxMessageBytes: tuning.maxMessageBytes,
      maxPendingBytes: tuning.maxReassemblyBytes,
      maxPendingMessages: tuning.maxPendingMessages,
    });
    // Frames must fit the peer's receive slots, whatever the tuning says.
    const fit = payloadCapacity(channel.maxSendBytes);
    const frameSizes = {} as Record<TrafficClass, number>;
    for (const [cls, n] of Object.entries(tuning.frameBytes) as [TrafficClass, number][]) frameSizes[cls] = Math.min(n, fit);
    this.#scheduler = tuning.scheduler({ frameBytes: frameSizes, wake: () => this.#schedulePump() });
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });

    socket.setNoDelay(true);
    socket.setKeepAlive(true, 15_000);
    socket.on('data', this.#onSideData);
    socket.on('end', this.#onSideEnd);
    socket.on('error', this.#onSideError);
    socket.on('close', this.#onSideClose);
    socket.resume();
    // Deliver on the next turn, so whoever receives this link can attach 'message' first.
    setImmediate(() => {
      if (this.#state === 'closed') return;
      channel.attach({
        onReceive: this.#onReceive,
        onSendComplete: this.#onSendComplete,
        onProgress: this.#onProgress,
        onError: this.#onChannelError,
      });
    });
  }

  get closed(): boolean {
    return this.#state !== 'open';
  }

  /** Resolves when the link has closed and released its queue pair and socket. */
  get whenClosed(): Promise<void> {
    return this.#closed;
  }

  stats(): LinkStats {
    return {
      framesSent: this.#framesSent,
      framesReceived: this.#framesReceived,
      bytesSent: this.#bytesSent,
      bytesReceived: this.#bytesReceived,
      messagesSent: this.#messagesSent,
      messagesReceived: this.#messagesReceived,
      queuedBytes: this.#queuedBytes(),
      rejectedFrames: this.#rejectedFrames,
      rekeys: this.#sealer.rekeys + this.#rekeysReceived,
    };
  }

  /** Queue pair counters (credits, sends in flight, credit messages), for diagnostics. */
  verbsCounters(): ReturnType<VerbsChannel['counters']> {
    return this.#channel.counters();
  }

  #queuedBytes(): number {
    return this.#scheduler.queuedBytes + (this.#pendingFrame?.length ?? 0);
  }

  // ---- sending ----

  send(msg: OutboundMessage): boolean {
    if (this.#state !== 'open') {
      throw new TransportError(TransportErrorCode.LINK_CLOSED, `link ${this.id} to ${this.remoteAddress} is ${this.#state}`);
    }
    this.#scheduler.enqueue(toQueuedMessage(msg, this.segment, this.#tuning.maxMessageBytes));
    this.#schedulePump();
    const ok = this.#queuedBytes() < this.#tuning.highWaterMark;
    if (!ok) this.#needDrain = true;
    return ok;
  }

  #schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    process.nextTick(this.#pump);
  }

  readonly #pump = (): void => {
    this.#pumpScheduled = false;
    this.#pumpImmediate = undefined;
    if (this.#state === 'closed' || this.#closeFrameSent || this.#closeSlot !== undefined) return;
    const ch = this.#channel;
    let budget = this.#scheduler.turnBytes?.() ?? PUMP_BYTES_PER_TURN; // shorter turns for bulk while inference runs
    try {
      if (this.#closeWanted === undefined) {
        while (budget > 0 && ch.writable) {
          const f = this.#pendingFrame ?? this.#scheduler.next();
          this.#pendingFrame = undefined;
          if (f === undefined) break;
          if (this.#sealer.rekeyDue(f.length)) {
            this.#postFrame(this.#sealer.sealRekey());
            if (!ch.writable) {
              this.#pendingFrame = f;
              break;
            }
          }
          const m = f.msg;
          budget -= this.#sealAndPost({
            type: FrameType.DATA,
            cls: m.cls,
            flags: (f.first ? FrameFlags.FIRST : 0) | (f.last ? FrameFlags.LAST : 0),
            streamId: m.streamId,
            kind: m.kind,
            tenant: m.tenant,
            messageLength: m.cursor.length,
            parts: f.parts,
            payloadLength: f.length,
          });
          if (f.last) this.#messagesSent += 1;
        }
        if (this.#info?.by === 'local' && this.#pendingFrame === undefined && this.#scheduler.queuedMessages === 0) {
          this.#closeWanted = { code: CloseCode.NORMAL, reason: this.#info.reason };
        }
      }
      if (this.#closeWanted !== undefined) this.#trySendCloseFrame();
    } catch (err) {
      this.#fail(err);
      return;
    }
    if (budget <= 0 && ch.writable && this.#pumpImmediate === undefined) {
      this.#pumpImmediate = setImmediate(this.#pump); // budget spent: let the loop breathe
    }
    this.#maybeDrain();
  };

  /** Seals one frame into a free send slot and posts it; returns its wire size. */
  #sealAndPost(spec: FrameSpec): number {
    const ch = this.#channel;
    const slot = ch.acquire() as number;
    let size: number;
    try {
      size = this.#sealer.sealInto(spec, ch.sendSlot(slot), 0);
    } catch (err) {
      ch.release(slot);
      throw err;
    }
    ch.post(slot, size);
    this.#framesSent += 1;
    this.#bytesSent += size;
    return size;
  }

  /** Posts a frame sealed elsewhere (a rekey: rare, so its extra copy does not matter). */
  #postFrame(frame: Buffer): number {
    const ch = this.#channel;
    const slot = ch.acquire() as number;
    frame.copy(ch.sendSlot(slot));
    ch.post(slot, frame.byteLength);
    this.#framesSent += 1;
    this.#bytesSent += frame.byteLength;
    return slot;
  }

  /** Posts the close frame once a credit allows; the side channel ends when it has been delivered. */
  #trySendCloseFrame(): void {
    const want = this.#closeWanted;
    if (want === undefined || this.#closeSlot !== undefined || this.#closeFrameSent) return;
    const ch = this.#channel;
    if (ch.failed || ch.closed) {
      this.#closeFrameSent = true;
      this.#endSideChannel();
      return;
    }
    if (!ch.writable) return; // onProgress retries; the teardown timer bounds the wait
    const payload = encodeClosePayload(want.code, want.reason);
    const frame = this.#sealer.seal({
      type: FrameType.CLOSE,
      cls: 'control',
      flags: FrameFlags.FIRST | FrameFlags.LAST,
      streamId: 0,
      kind: 0,
      tenant: 0,
      messageLength: payload.byteLength,
      parts: [payload],
      payloadLength: payload.byteLength,
    });
    this.#closeSlot = this.#postFrame(frame);
    this.#armTeardown();
  }

  readonly #onSendComplete = (slot: number): void => {
    if (slot === this.#closeSlot) {
      // The peer's queue pair has the close frame: now end the side channel behind it.
      this.#closeSlot = undefined;
      this.#closeFrameSent = true;
      this.#endSideChannel();
    }
  };

  readonly #onProgress = (): void => {
    if (this.#state === 'closed') return;
    if (this.#closeWanted !== undefined) this.#trySendCloseFrame();
    else if (this.#channel.writable && (this.#pendingFrame !== undefined || this.#scheduler.queuedMessages > 0)) this.#pump();
    else this.#maybeDrain();
  };

  #maybeDrain(): void {
    if (this.#needDrain && this.#state === 'open' && this.#queuedBytes() <= this.#tuning.highWaterMark / 2) {
      this.#needDrain = false;
      this.emit('drain');
    }
  }

  // ---- receiving ----

  readonly #onReceive = (slot: number, data: Buffer): void => {
    if (this.#paused || this.#held.length > 0) {
      this.#held.push({ slot, length: data.byteLength });
      return;
    }
    this.#consume(slot, data);
  };

  #consume(slot: number, data: Buffer): void {
    if (this.#readingStopped || this.#state === 'closed') {
      this.#channel.repost(slot); // nothing may follow a close frame: drop it
      return;
    }
    let msg: InboundMessage | undefined;
    try {
      const h = decodeFrameHeader(data, { segment: this.segment, maxFramePayload: this.#maxReceivePayload, maxMessageBytes: this.#tuning.maxMessageBytes });
      if (data.byteLength !== frameBytes(h.payloadLength)) {
        throw new WireError(WireErrorCode.MALFORMED, `a SEND of ${data.byteLength} bytes holds a frame of ${frameBytes(h.payloadLength)}`);
      }
      this.#framesReceived += 1;
      this.#bytesReceived += data.byteLength;
      msg = this.#openFrame(h, data);
    } catch (err) {
      this.#fail(err);
      return;
    }
    this.#channel.repost(slot);
    if (msg !== undefined) this.#deliver(msg);
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
      this.#onPeerClose(code, reason);
    }
    return undefined;
  }

  #deliver(msg: InboundMessage): void {
    this.#messagesReceived += 1;
    if (this.#state === 'closed') return;
    try {
      this.emit('message', msg);
    } catch (err) {
      // A listener's bug is the application's: surface it, keep the link's state intact.
      process.nextTick(() => {
        throw err;
      });
    }
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    const slotBytes = this.#channel.options.slotBytes;
    while (!this.#paused && this.#held.length > 0 && this.#state !== 'closed') {
      const { slot, length } = this.#held.shift() as HeldSlot;
      this.#consume(slot, this.#channel.recvPool.subarray(slot * slotBytes, slot * slotBytes + length));
    }
    if (!this.#paused && this.#held.length === 0 && this.#sideChannelGone !== undefined) {
      const err = this.#sideChannelGone;
      this.#sideChannelGone = undefined;
      this.#sideChannelLost(err);
    }
  }

  // ---- closing ----

  close(reason = 'closed by the application'): Promise<void> {
    if (this.#state !== 'open') return this.#closed;
    this.#state = 'closing';
    this.#info = { by: 'local', code: CloseCode.NORMAL, reason };
    this.#closeTimer = setTimeout(() => {
      // The peer did not take our queued messages in time: give up on them.
      this.#dropQueued();
      this.#socket.destroy();
    }, this.#tuning.closeTimeoutMs);
    this.#closeTimer.unref();
    this.#schedulePump();
    return this.#closed;
  }

  #onPeerClose(code: number, reason: string): void {
    if (this.#state === 'closed') return;
    if (this.#info === undefined || (this.#info.by === 'local' && !this.#closeFrameSent)) {
      this.#info = { by: 'peer', code, reason: reason === '' ? closeCodeName(code) : reason };
    }
    this.#state = 'closing';
    this.#dropQueued();
    this.#readingStopped = true; // nothing may follow a close frame
    this.#endSideChannel();
    this.#armTeardown();
  }

  #dropQueued(): void {
    this.#scheduler.clear();
    this.#pendingFrame = undefined;
  }

  #endSideChannel(): void {
    if (!this.#socket.destroyed && this.#socket.writable) this.#socket.end();
  }

  #armTeardown(): void {
    if (this.#teardownTimer !== undefined) return;
    this.#teardownTimer = setTimeout(() => this.#socket.destroy(), TEARDOWN_GRACE_MS);
    this.#teardownTimer.unref();
  }

  /** Ends the link because of `err`, telling the peer why when the queue pair still can. */
  #fail(err: unknown): void {
    if (this.#state === 'closed') return;
    if (this.#info !== undefined && (this.#info.by === 'peer' || this.#closeFrameSent)) {
      // Already ending cleanly: a failure while tearing down is not news.
      this.#socket.destroy();
      return;
    }
    const error = err instanceof Error ? err : new Error(String(err));
    if (err instanceof WireError) this.#rejectedFrames += 1;
    const code = closeCodeFor(err);
    this.#info = { by: 'error', code, reason: error.message, error };
    this.#state = 'closing';
    this.#dropQueued();
    this.#readingStopped = true;
    this.#closeWanted ??= { code, reason: isSluiceError(err) ? error.message : 'internal error' };
    try {
      this.#trySendCloseFrame();
    } catch {
      // Sealing itself failed: the side channel's end says enough.
      this.#endSideChannel();
    }
    this.#armTeardown();
  }

  readonly #onChannelError = (err: RdmaError): void => {
    if (this.#info?.by === 'peer' || this.#closeFrameSent) {
      // The peer tore down its queue pair after the close: expected.
      this.#socket.destroy();
      return;
    }
    this.#fail(err);
  };

  #peerGone(what: string, cause?: Error): TransportError {
    const pending = this.#reassembler.describePending();
    const mid = pending !== undefined ? ` mid-message (${pending})` : '';
    return new TransportError(TransportErrorCode.PEER_GONE, `peer ${this.remoteAddress} on the ${this.segment} segment ${what}${mid}`, { cause });
  }

  readonly #onSideData = (): void => {
    this.#fail(new WireError(WireErrorCode.MALFORMED, `${this.remoteAddress} sent data on the RDMA side channel after set-up`));
  };

  /** The side channel ended or failed: first take in what the queue pair already holds. */
  #sideChannelLost(err: Error): void {
    this.#channel.pollNow();
    if (this.#paused || this.#held.length > 0) {
      this.#sideChannelGone ??= err;
      return;
    }
    if (this.#info?.by === 'peer' || this.#closeFrameSent) {
      this.#endSideChannel();
      return;
    }
    this.#fail(err);
    this.#socket.destroy();
  }

  readonly #onSideEnd = (): void => {
    this.#sideChannelLost(this.#peerGone('closed the connection without a close frame'));
  };

  readonly #onSideError = (err: NodeJS.ErrnoException): void => {
    this.#sideChannelLost(this.#peerGone(`connection failed (${err.code ?? err.message})`, err));
  };

  readonly #onSideClose = (): void => {
    if (this.#state === 'closed') return;
    if (this.#info === undefined || (this.#info.by === 'local' && !this.#closeFrameSent)) {
      const err = this.#sideChannelGone ?? this.#peerGone('connection closed');
      if (this.#info?.by === 'local') this.#info = { by: 'error', code: CloseCode.INTERNAL_ERROR, reason: `close timed out: ${err.message}`, error: err };
      else this.#info = { by: 'error', code: CloseCode.INTERNAL_ERROR, reason: err.message, error: err };
    }
    this.#state = 'closed';
    clearTimeout(this.#closeTimer);
    clearTimeout(this.#teardownTimer);
    if (this.#pumpImmediate !== undefined) clearImmediate(this.#pumpImmediate);
    this.#dropQueued();
    this.#held.length = 0;
    this.#reassembler.clear();
    this.#channel.close();
    this.#sealer.destroy();
    this.#opener.destroy();
    this.#socket.off('data', this.#onSideData);
    const info = this.#info;
    this.emit('close', info);
    this.#resolveClosed();
  };
}
