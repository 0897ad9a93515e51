// A link over a TCP socket, after the handshake. Outbound: messages wait in the scheduler as
// references to the caller's buffers; a frame is sealed (the one copy) into a reused ring only
// when the socket holds less than sealAheadBytes, so a slow reader stops the sealing, memory
// stays bounded, and an urgent frame waits behind at most that much (plus the kernel's
// buffer). Inbound: reads land in reusable buffers (socket-input.ts), the receiver splits them
// into frames and decrypts each straight into its message buffer.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { AeadFactory } from '../crypto/aead-factory.ts';
import type { LinkRole } from '../crypto/key-schedule.ts';
import { TrafficKeys } from '../crypto/traffic-keys.ts';
import { isSluiceError } from '../errors.ts';
import type { LinkScheduler } from '../scheduler/link-scheduler.ts';
import { CloseCode, closeCodeFor, closeCodeName, encodeClosePayload } from '../wire/close-frame.ts';
import { WireError } from '../wire/errors.ts';
import { FrameFlags, FrameType, frameBytes } from '../wire/frame-header.ts';
import { FrameReceiver } from '../wire/frame-receiver.ts';
import { FrameSealer } from '../wire/frame-sealer.ts';
import { TransportError, TransportErrorCode } from './errors.ts';
import type { HandshakeResult } from './handshake.ts';
import type { ResolvedLinkTuning } from './link-tuning.ts';
import { toQueuedMessage } from './outbound-message.ts';
import { SealRing } from './seal-ring.ts';
import type { ByteInput } from './socket-input.ts';
import type { InboundMessage, Link, LinkCloseInfo, LinkStats, OutboundMessage, SegmentName } from './types.ts';

/**
 * Bytes sealed per turn of the event loop before yielding, so receiving is never starved,
 * unless the scheduler asks for shorter turns (turnBytes(): bulk while inference runs).
 */
const PUMP_BYTES_PER_TURN = 4 * 1024 * 1024;
/** Frames at least this big are sealed into the link's ring; smaller ones into fresh buffers. */
const RING_MIN_FRAME = 16 * 1024;
/** After the close frame (or a fatal error), how long the peer gets to end its side. */
const TEARDOWN_GRACE_MS = 1000;

export interface TcpLinkInit {
  socket: Socket;
  /** Where the socket's bytes arrive (see socket-input.ts). */
  input: ByteInput;
  segment: SegmentName;
  role: LinkRole;
  handshake: HandshakeResult;
  tuning: ResolvedLinkTuning;
  aeadFactory: AeadFactory;
}

type State = 'open' | 'closing' | 'closed';

function discard(): void {}

export class TcpLink extends EventEmitter implements Link {
  readonly id: string;
  readonly segment: SegmentName;
  readonly transport = 'tcp' as const;
  readonly remoteAddress: string;
  readonly role: LinkRole;

  readonly #socket: Socket;
  readonly #input: ByteInput;
  readonly #tuning: ResolvedLinkTuning;
  readonly #sealer: FrameSealer;
  readonly #receiver: FrameReceiver;
  readonly #scheduler: LinkScheduler;
  readonly #ring: SealRing;
  readonly #releaseRing = (): void => this.#ring.release();

  #state: State = 'open';
  #info: LinkCloseInfo | undefined;
  #closeFrameSent = false;
  #socketBlocked = false;
  #pumpScheduled = false;
  #pumpImmediate: NodeJS.Immediate | undefined;
  #needDrain = false;
  #paused = false;
  /** Bytes taken in since reading last yielded to the event loop (see #onData). */
  #receivedThisTurn = 0;
  #readYield: NodeJS.Immediate | undefined;
  #closeTimer: NodeJS.Timeout | undefined;
  #teardownTimer: NodeJS.Timeout | undefined;
  readonly #closed: Promise<void>;
  #resolveClosed!: () => void;

  #framesSent = 0;
  #bytesSent = 0;
  #messagesSent = 0;
  #messagesReceived = 0;
  #rejectedFrames = 0;

  constructor(init: TcpLinkInit) {
    super();
    const { socket, handshake, tuning } = init;
    this.#socket = socket;
    this.#input = init.input;
    this.#tuning = tuning;
    this.segment = init.segment;
    this.role = init.role;
    this.id = handshake.linkId;
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const { secrets } = handshake;
    this.#sealer = new FrameSealer(new TrafficKeys(secrets.send, secrets.sendDirection, init.aeadFactory, tuning.keyLimits), init.segment);
    this.#receiver = new FrameReceiver(
      {
        segment: init.segment,
        keys: new TrafficKeys(secrets.receive, secrets.receiveDirection, init.aeadFactory, tuning.keyLimits),
        maxMessageBytes: tuning.maxMessageBytes,
        maxReassemblyBytes: tuning.maxReassemblyBytes,
        maxPendingMessages: tuning.maxPendingMessages,
      },
      { message: (m) => this.#deliver(m), close: (code, reason) => this.#onPeerClose(code, reason) },
    );
    secrets.send.fill(0);
    secrets.receive.fill(0);
    this.#scheduler = tuning.scheduler({ frameBytes: tuning.frameBytes, wake: () => this.#schedulePump() });
    const largestFrame = frameBytes(Math.max(...Object.values(tuning.frameBytes)));
    this.#ring = new SealRing(tuning.sealAheadBytes + 2 * largestFrame);
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });

    socket.setNoDelay(true);
    socket.setKeepAlive(true, 15_000);
    socket.on('drain', this.#onSocketDrain);
    socket.on('end', this.#onSocketEnd);
    socket.on('error', this.#onSocketError);
    socket.on('close', this.#onSocketClose);
    // Start reading on the next turn, so whoever receives this link can attach 'message' first.
    setImmediate(() => {
      if (this.#state === 'closed' || this.#info?.by === 'peer' || this.#info?.by === 'error') return;
      if (handshake.leftover !== undefined) this.#onData(handshake.leftover);
      this.#input.attach(this.#onData, () => this.#receiver.retainedBytes);
      if (!this.#paused) socket.resume();
    });
  }

  get closed(): boolean {
    return this.#state !== 'open';
  }

  /** True when reads land in reusable buffers (see socket-input.ts), not Node's per-read buffers. */
  get zeroCopyReads(): boolean {
    return this.#input.zeroCopy;
  }

  /** Resolves when the link has closed and released its socket. */
  get whenClosed(): Promise<void> {
    return this.#closed;
  }

  stats(): LinkStats {
    return {
      framesSent: this.#framesSent,
      framesReceived: this.#receiver.framesReceived,
      bytesSent: this.#bytesSent,
      bytesReceived: this.#receiver.bytesReceived,
      messagesSent: this.#messagesSent,
      messagesReceived: this.#messagesReceived,
      queuedBytes: this.#queuedBytes(),
      rejectedFrames: this.#rejectedFrames,
      rekeys: this.#sealer.rekeys + this.#receiver.rekeys,
    };
  }

  #queuedBytes(): number {
    return this.#scheduler.queuedBytes + (this.#socket.destroyed ? 0 : this.#socket.writableLength);
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
    // Sends in the same turn are gathered into one write.
    process.nextTick(this.#pump);
  }

  readonly #pump = (): void => {
    this.#pumpScheduled = false;
    this.#pumpImmediate = undefined;
    if (this.#state === 'closed' || this.#socketBlocked || this.#socket.destroyed || this.#closeFrameSent) return;
    let budget = this.#scheduler.turnBytes?.() ?? PUMP_BYTES_PER_TURN;
    // next() may return nothing while messages are queued (a paced class): the scheduler then
    // calls wake() when it is ready, and the pump must not spin meanwhile.
    let idle = false;
    const socket = this.#socket;
    socket.cork();
    try {
      while (budget > 0) {
        const f = this.#scheduler.next();
        if (f === undefined) {
          idle = true;
          break;
        }
        if (this.#sealer.rekeyDue(f.length)) this.#write(this.#sealer.sealRekey());
        const m = f.msg;
        const spec = {
          type: FrameType.DATA,
          cls: m.cls,
          flags: (f.first ? FrameFlags.FIRST : 0) | (f.last ? FrameFlags.LAST : 0),
          streamId: m.streamId,
          kind: m.kind,
          tenant: m.tenant,
          messageLength: m.cursor.length,
          parts: f.parts,
          payloadLength: f.length,
        } as const;
        const size = frameBytes(f.length);
        const inRing = size >= RING_MIN_FRAME;
        const frame = inRing ? this.#ring.alloc(size) : Buffer.allocUnsafe(size);
        this.#sealer.sealInto(spec, frame, 0);
        if (f.last) this.#messagesSent += 1;
        budget -= frame.byteLength;
        if (!this.#write(frame, inRing)) break;
      }
      if (this.#info?.by === 'local' && !this.#socketBlocked && this.#scheduler.queuedMessages === 0) this.#sendCloseFrame(CloseCode.NORMAL, this.#info.reason);
    } catch (err) {
      this.#fail(err);
    } finally {
      socket.uncork();
    }
    if (!idle && !this.#socketBlocked && this.#scheduler.queuedMessages > 0 && this.#pumpImmediate === undefined) {
      this.#pumpImmediate = setImmediate(this.#pump); // budget spent: let the loop breathe
    }
    this.#maybeDrain();
  };

  /**
   * Writes one sealed frame; false once the socket holds sealAheadBytes not yet taken by
   * the kernel (then wait for its 'drain'). Sealing a little ahead keeps the kernel's buffer
   * fed while the next frames are sealed; keeping it small keeps urgent frames near the front.
   */
  #write(frame: Buffer, inRing = false): boolean {
    this.#framesSent += 1;
    this.#bytesSent += frame.byteLength;
    if (inRing) this.#socket.write(frame, this.#releaseRing);
    else this.#socket.write(frame);
    if (this.#socket.writableLength < this.#tuning.sealAheadBytes) return true;
    this.#socketBlocked = true;
    return false;
  }

  readonly #onSocketDrain = (): void => {
    this.#socketBlocked = false;
    // 'drain' comes in a nextTick of the turn that wrote; with a turn budget the next frame
    // waits for the next turn, or drain -> pump -> drain would seal the whole queue in one.
    if (this.#scheduler.turnBytes?.() === undefined) this.#pump();
    else if (this.#pumpImmediate === undefined) this.#pumpImmediate = setImmediate(this.#pump);
  };

  #maybeDrain(): void {
    if (this.#needDrain && this.#state === 'open' && this.#queuedBytes() <= this.#tuning.highWaterMark / 2) {
      this.#needDrain = false;
      this.emit('drain');
    }
  }

  #sendCloseFrame(code: number, reason: string): void {
    if (this.#closeFrameSent || this.#socket.destroyed || !this.#socket.writable) return;
    this.#closeFrameSent = true;
    const payload = encodeClosePayload(code, reason);
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
    this.#framesSent += 1;
    this.#bytesSent += frame.byteLength;
    this.#socket.end(frame);
    this.#armTeardown();
  }

  // ---- receiving ----

  readonly #onData = (chunk: Buffer): void => {
    try {
      this.#receiver.push(chunk);
    } catch (err) {
      this.#fail(err);
      return;
    }
    this.#boundReadTurn(chunk.byteLength);
  };

  /**
   * With a turn budget (bulk while inference runs), reads stop once a turn has taken in that
   * many bytes (decrypted and delivered them, which may mean hashing and relaying) and start
   * again on the next turn, so an inference request ready meanwhile runs in between. Each read
   * is capped at the budget too. Without a budget, reads go on as the kernel offers them.
   */
  #boundReadTurn(bytes: number): void {
    const budget = this.#scheduler.turnBytes?.();
    this.#input.limitReads?.(budget);
    if (budget === undefined) {
      this.#receivedThisTurn = 0;
      return;
    }
    this.#receivedThisTurn += bytes;
    if (this.#receivedThisTurn < budget || this.#readYield !== undefined || this.#state === 'closed') return;
    this.#socket.pause();
    this.#readYield = setImmediate(() => {
      this.#readYield = undefined;
      this.#receivedThisTurn = 0;
      if (!this.#paused && !this.#receiver.paused && this.#state !== 'closed' && !this.#socket.destroyed) this.#socket.resume();
    });
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
    this.#receiver.pause();
    this.#socket.pause();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    try {
      this.#receiver.resume();
    } catch (err) {
      this.#fail(err);
      return;
    }
    if (!this.#receiver.paused && this.#state !== 'closed') this.#socket.resume();
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
    this.#stopReading(); // nothing may follow a close frame
    if (!this.#socket.destroyed) this.#socket.end();
    this.#armTeardown();
  }

  /** Ignores whatever else arrives, but keeps reading so the peer's end of stream is seen. */
  #stopReading(): void {
    this.#receiver.stop();
    this.#input.attach(discard);
    this.#socket.resume();
  }

  #dropQueued(): void {
    this.#scheduler.clear();
  }

  #armTeardown(): void {
    if (this.#teardownTimer !== undefined) return;
    this.#teardownTimer = setTimeout(() => this.#socket.destroy(), TEARDOWN_GRACE_MS);
    this.#teardownTimer.unref();
  }

  /** Ends the link because of `err`, telling the peer why when the socket still can. */
  #fail(err: unknown): void {
    if (this.#state === 'closed') return;
    if (this.#info !== undefined && (this.#info.by === 'peer' || this.#closeFrameSent)) {
      // Already ending cleanly: a reset while tearing down is not news.
      this.#socket.destroy();
      return;
    }
    const error = err instanceof Error ? err : new Error(String(err));
    if (err instanceof WireError) this.#rejectedFrames += 1;
    const code = closeCodeFor(err);
    this.#info = { by: 'error', code, reason: error.message, error };
    this.#state = 'closing';
    this.#dropQueued();
    this.#stopReading();
    try {
      this.#sendCloseFrame(code, isSluiceError(err) ? error.message : 'internal error');
    } catch {
      // Sealing itself failed: nothing more to tell the peer.
    }
    this.#socket.destroySoon();
    this.#armTeardown();
  }

  #peerGone(what: string, cause?: Error): TransportError {
    const pending = this.#receiver.describePending();
    const mid = pending !== undefined ? ` mid-message (${pending})` : this.#receiver.midFrame ? ' mid-frame' : '';
    return new TransportError(TransportErrorCode.PEER_GONE, `peer ${this.remoteAddress} on the ${this.segment} segment ${what}${mid}`, { cause });
  }

  readonly #onSocketEnd = (): void => {
    if (this.#info?.by === 'peer' || this.#closeFrameSent) return;
    try {
      this.#receiver.end();
    } catch (err) {
      this.#fail(this.#peerGone('closed the connection', err as Error));
      return;
    }
    this.#fail(this.#peerGone('closed the connection without a close frame'));
  };

  readonly #onSocketError = (err: NodeJS.ErrnoException): void => {
    this.#fail(this.#peerGone(`connection failed (${err.code ?? err.message})`, err));
  };

  readonly #onSocketClose = (): void => {
    if (this.#state === 'closed') return;
    if (this.#info === undefined || (this.#info.by === 'local' && !this.#closeFrameSent)) {
      const err = this.#peerGone('connection closed');
      if (this.#info?.by === 'local') this.#info = { by: 'error', code: CloseCode.INTERNAL_ERROR, reason: `close timed out: ${err.message}`, error: err };
      else this.#info = { by: 'error', code: CloseCode.INTERNAL_ERROR, reason: err.message, error: err };
    }
    this.#state = 'closed';
    clearTimeout(this.#closeTimer);
    clearTimeout(this.#teardownTimer);
    if (this.#pumpImmediate !== undefined) clearImmediate(this.#pumpImmediate);
    if (this.#readYield !== undefined) clearImmediate(this.#readYield);
    this.#dropQueued();
    this.#sealer.destroy();
    this.#receiver.destroy();
    this.#input.attach(discard);
    const info = this.#info;
    this.emit('close', info);
    this.#resolveClosed();
  };
}
