// A link over a TCP socket, after the handshake. Outbound: messages wait in the scheduler as
// references to the caller's buffers; a frame is sealed (the one copy) into a reused ring only
// when the socket holds less than sealAheadBytes, so a slow reader stops the sealing, memory
// stays bounded, and an urgent frame waits behind at most that much (plus the kernel's
// buffer). Inbound: reads land in reusable buffers (socket-input.ts), the receiver splits them
// into frames and decrypts each straight into its message buffer. Queueing, delivery and the
// close sequence are LinkBase's.
import type { Socket } from 'node:net';
import type { AeadFactory } from '../crypto/aead-factory.ts';
import type { LinkRole } from '../crypto/key-schedule.ts';
import { TrafficKeys } from '../crypto/traffic-keys.ts';
import { CloseCode, closeFrameSpec } from '../wire/close-frame.ts';
import { frameBytes } from '../wire/frame-header.ts';
import { FrameReceiver } from '../wire/frame-receiver.ts';
import { FrameSealer } from '../wire/frame-sealer.ts';
import type { HandshakeResult } from './handshake.ts';
import { dataFrameSpec, LinkBase } from './link-base.ts';
import type { ResolvedLinkTuning } from './link-tuning.ts';
import { SealRing } from './seal-ring.ts';
import { readSocketClass } from './socket-class.ts';
import type { ByteInput } from './socket-input.ts';
import type { SegmentName } from './types.ts';

/**
 * Bytes sealed per turn of the event loop before yielding, so receiving is never starved,
 * unless the scheduler asks for shorter turns (turnBytes(): bulk while inference runs).
 */
const PUMP_BYTES_PER_TURN = 4 * 1024 * 1024;
/** Frames at least this big are sealed into the link's ring; smaller ones into fresh buffers. */
const RING_MIN_FRAME = 16 * 1024;

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

function discard(): void {}

export class TcpLink extends LinkBase {
  readonly transport = 'tcp' as const;

  readonly #input: ByteInput;
  readonly #receiver: FrameReceiver;
  readonly #ring: SealRing;
  readonly #releaseRing = (): void => this.#ring.release();

  #socketBlocked = false;
  #paused = false;
  /** Bytes taken in since reading last yielded to the event loop (see #boundReadTurn). */
  #receivedThisTurn = 0;
  #readYield: NodeJS.Immediate | undefined;

  constructor(init: TcpLinkInit) {
    const { socket, handshake, tuning } = init;
    const { secrets } = handshake;
    super({
      socket,
      segment: init.segment,
      role: init.role,
      linkId: handshake.linkId,
      tuning,
      sealer: new FrameSealer(new TrafficKeys(secrets.send, secrets.sendDirection, init.aeadFactory, tuning.keyLimits), init.segment),
      frameBytes: tuning.frameBytes,
    });
    this.#input = init.input;
    this.#receiver = new FrameReceiver(
      {
        segment: init.segment,
        keys: new TrafficKeys(secrets.receive, secrets.receiveDirection, init.aeadFactory, tuning.keyLimits),
        maxMessageBytes: tuning.maxMessageBytes,
        maxReassemblyBytes: tuning.maxReassemblyBytes,
        maxPendingMessages: tuning.maxPendingMessages,
        ...(tuning.receivePool !== undefined ? { pooled: { pool: tuning.receivePool, cls: 'training' as const } } : {}),
      },
      {
        message: (m) => this.deliver(m),
        close: (code, reason) => this.onPeerClose(code, reason),
        // The receive pool is empty: stop reading until a slab comes back (the peer backs up).
        starved: (starved) => (starved ? this.socket.pause() : this.#resumeReading()),
        error: (err) => this.fail(err),
      },
    );
    secrets.send.fill(0);
    secrets.receive.fill(0);
    const largestFrame = frameBytes(Math.max(...Object.values(tuning.frameBytes)));
    this.#ring = new SealRing(tuning.sealAheadBytes + 2 * largestFrame);

    socket.on('drain', this.#onSocketDrain);
    socket.on('end', this.#onSocketEnd);
    socket.on('error', this.#onSocketError);
    socket.on('close', this.#onSocketClose);
    // Start reading on the next turn, so whoever receives this link can attach 'message' first.
    setImmediate(() => {
      if (this.state === 'closed' || this.info?.by === 'peer' || this.info?.by === 'error') return;
      if (handshake.leftover !== undefined) this.#onData(handshake.leftover);
      this.#input.attach(this.#onData, () => this.#receiver.retainedBytes);
      if (!this.#paused) socket.resume();
    });
  }

  /** True when reads land in reusable buffers (see socket-input.ts), not Node's per-read buffers. */
  get zeroCopyReads(): boolean {
    return this.#input.zeroCopy;
  }

  /** The TOS byte and SO_PRIORITY the kernel holds for this link's socket (undefined once closed). */
  socketClass(): ReturnType<typeof readSocketClass> {
    return readSocketClass(this.socket);
  }

  protected receiveCounts(): { framesReceived: number; bytesReceived: number; rekeys: number } {
    return { framesReceived: this.#receiver.framesReceived, bytesReceived: this.#receiver.bytesReceived, rekeys: this.#receiver.rekeys };
  }

  protected carrierQueuedBytes(): number {
    return this.socket.destroyed ? 0 : this.socket.writableLength;
  }

  // ---- sending ----

  protected pumpFrames(): boolean {
    if (this.state === 'closed' || this.#socketBlocked || this.socket.destroyed || this.closeFrameSent) return false;
    let budget = this.scheduler.turnBytes?.() ?? PUMP_BYTES_PER_TURN;
    // next() may return nothing while messages are queued (a paced class): the scheduler then
    // calls wake() when it is ready, and the pump must not spin meanwhile.
    let idle = false;
    const socket = this.socket;
    socket.cork();
    try {
      while (budget > 0) {
        const f = this.scheduler.next();
        if (f === undefined) {
          idle = true;
          break;
        }
        if (this.sealer.rekeyDue(f.length)) this.#write(this.sealer.sealRekey());
        const size = frameBytes(f.length);
        const inRing = size >= RING_MIN_FRAME;
        const frame = inRing ? this.#ring.alloc(size) : Buffer.allocUnsafe(size);
        try {
          this.sealer.sealInto(dataFrameSpec(f), frame, 0);
        } finally {
          // The scheduler has let go of a message once its last frame is out: sealed or not.
          if (f.last) f.msg.bodyReleased?.();
        }
        if (f.last) this.messagesSent += 1;
        budget -= frame.byteLength;
        if (!this.#write(frame, inRing)) break;
      }
      if (this.info?.by === 'local' && !this.#socketBlocked && this.scheduler.queuedMessages === 0) this.#sendCloseFrame(CloseCode.NORMAL, this.info.reason);
    } catch (err) {
      this.fail(err);
    } finally {
      socket.uncork();
    }
    return !idle && !this.#socketBlocked && this.scheduler.queuedMessages > 0;
  }

  /**
   * Writes one sealed frame; false once the socket holds sealAheadBytes not yet taken by
   * the kernel (then wait for its 'drain'). Sealing a little ahead keeps the kernel's buffer
   * fed while the next frames are sealed; keeping it small keeps urgent frames near the front.
   */
  #write(frame: Buffer, inRing = false): boolean {
    this.countSent(frame.byteLength);
    if (inRing) this.socket.write(frame, this.#releaseRing);
    else this.socket.write(frame);
    if (this.socket.writableLength < this.tuning.sealAheadBytes) return true;
    this.#socketBlocked = true;
    return false;
  }

  protected override sendTailWitness(): boolean {
    // Behind a blocked socket the frames still queued will be followed by more: not quiet.
    if (this.#socketBlocked || this.socket.destroyed || this.closeFrameSent || !this.socket.writable) return false;
    try {
      this.#write(this.sealer.sealRekey());
    } catch (err) {
      this.fail(err);
      return false;
    }
    return true;
  }

  readonly #onSocketDrain = (): void => {
    this.#socketBlocked = false;
    // 'drain' comes in a nextTick of the turn that wrote; with a turn budget the next frame
    // waits for the next turn, or drain -> pump -> drain would seal the whole queue in one.
    if (this.scheduler.turnBytes?.() === undefined) this.pump();
    else this.pumpNextTurn();
  };

  #sendCloseFrame(code: number, reason: string): void {
    if (this.closeFrameSent || this.socket.destroyed || !this.socket.writable) return;
    this.closeFrameSent = true;
    const frame = this.sealer.seal(closeFrameSpec(code, reason));
    this.countSent(frame.byteLength);
    this.socket.end(frame);
    this.armTeardown();
  }

  protected closeAfterFailure(code: number, reason: string): void {
    try {
      this.#sendCloseFrame(code, reason);
    } catch {
      // Sealing itself failed: nothing more to tell the peer.
    }
    this.socket.destroySoon();
  }

  // ---- receiving ----

  readonly #onData = (chunk: Buffer): void => {
    try {
      this.#receiver.push(chunk);
    } catch (err) {
      this.fail(err);
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
    const budget = this.scheduler.turnBytes?.();
    this.#input.limitReads?.(budget);
    if (budget === undefined) {
      this.#receivedThisTurn = 0;
      return;
    }
    this.#receivedThisTurn += bytes;
    if (this.#receivedThisTurn < budget || this.#readYield !== undefined || this.state === 'closed') return;
    this.socket.pause();
    this.#readYield = setImmediate(() => {
      this.#readYield = undefined;
      this.#receivedThisTurn = 0;
      this.#resumeReading();
    });
  }

  #resumeReading(): void {
    if (!this.#paused && !this.#receiver.paused && this.#readYield === undefined && this.state !== 'closed' && !this.socket.destroyed) this.socket.resume();
  }

  pause(): void {
    this.#paused = true;
    this.#receiver.pause();
    this.socket.pause();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    try {
      this.#receiver.resume();
    } catch (err) {
      this.fail(err);
      return;
    }
    if (!this.#receiver.paused && this.state !== 'closed') this.socket.resume();
  }

  /** Ignores whatever else arrives, but keeps reading so the peer's end of stream is seen. */
  protected stopReading(): void {
    this.#receiver.stop();
    this.#input.attach(discard);
    this.socket.resume();
  }

  // ---- closing ----

  protected describePartial(): string {
    const pending = this.#receiver.describePending();
    return pending !== undefined ? ` mid-message (${pending})` : this.#receiver.midFrame ? ' mid-frame' : '';
  }

  readonly #onSocketEnd = (): void => {
    if (this.info?.by === 'peer' || this.closeFrameSent) return;
    try {
      this.#receiver.end();
    } catch (err) {
      this.fail(this.peerGone('closed the connection', err as Error));
      return;
    }
    this.fail(this.peerGone('closed the connection without a close frame'));
  };

  readonly #onSocketError = (err: NodeJS.ErrnoException): void => {
    this.fail(this.peerGone(`connection failed (${err.code ?? err.message})`, err));
  };

  readonly #onSocketClose = (): void => this.socketClosed();

  protected releaseCarrier(): void {
    if (this.#readYield !== undefined) clearImmediate(this.#readYield);
    this.#receiver.destroy();
    this.#input.attach(discard);
  }
}
