// Connects two queue pairs over the side channel, after the handshake: each end sends its
// endpoint record (queue pair number, GID, PSN, MTU, receive window and slot size) sealed in a
// control frame, so the exchange is authenticated and counted in the link's frame sequence like
// everything after it; the initiator then confirms with READY once its queue pair is ready to
// receive. Nothing but these frames (or a CLOSE saying why set-up failed) travels on the side
// channel; afterwards it only tells each end that the other is still there.
import type { Socket } from 'node:net';
import { isSluiceError } from '../../errors.ts';
import { closeCodeFor, decodeClosePayload, encodeClosePayload } from '../../wire/close-frame.ts';
import { WireError, WireErrorCode } from '../../wire/errors.ts';
import { FrameDecoder } from '../../wire/frame-decoder.ts';
import { FrameFlags, FrameType, type FrameHeader } from '../../wire/frame-header.ts';
import type { FrameOpener } from '../../wire/frame-opener.ts';
import type { FrameSealer } from '../../wire/frame-sealer.ts';
import { MessageKind } from '../../wire/message-kinds.ts';
import { TransportError, TransportErrorCode } from '../errors.ts';
import type { SegmentName } from '../types.ts';
import { decodeEndpoint, encodeEndpoint, type RdmaEndpoint } from './rdma-endpoint.ts';
import { RdmaError, RdmaErrorCode } from './rdma-errors.ts';
import type { VerbsChannel } from './verbs-channel.ts';

export interface SetupContext {
  socket: Socket;
  segment: SegmentName;
  sealer: FrameSealer;
  opener: FrameOpener;
  /** Bytes that followed the handshake on the socket. */
  leftover: Buffer | undefined;
  timeoutMs: number;
  /** Names the peer in errors. */
  remote: string;
}

interface SetupFrame {
  header: FrameHeader;
  payload: Buffer;
}

/** Reads sealed set-up frames off the side channel, one at a time. */
class SetupReader {
  readonly #ctx: SetupContext;
  readonly #decoder: FrameDecoder;
  readonly #frames: SetupFrame[] = [];
  #ended: Error | undefined;
  #wake: (() => void) | undefined;
  readonly #onData = (chunk: Buffer): void => {
    try {
      this.#decoder.push(chunk);
    } catch (err) {
      this.#ended ??= err as Error;
    }
    this.#wake?.();
  };
  readonly #onEnd = (): void => {
    this.#ended ??= new TransportError(TransportErrorCode.PEER_GONE, `${this.#ctx.remote} closed the connection during RDMA set-up`);
    this.#wake?.();
  };
  readonly #onError = (err: NodeJS.ErrnoException): void => {
    this.#ended ??= new TransportError(TransportErrorCode.PEER_GONE, `${this.#ctx.remote}: connection failed during RDMA set-up (${err.code ?? err.message})`, {
      cause: err,
    });
    this.#wake?.();
  };

  constructor(ctx: SetupContext) {
    this.#ctx = ctx;
    this.#decoder = new FrameDecoder({ segment: ctx.segment, maxFramePayload: 512, maxMessageBytes: 512 }, (h, hb, sealed) => {
      const payload = Buffer.allocUnsafe(h.payloadLength);
      ctx.opener.open(h, hb, sealed, payload);
      this.#frames.push({ header: h, payload });
    });
    ctx.socket.on('data', this.#onData);
    ctx.socket.on('end', this.#onEnd);
    ctx.socket.on('close', this.#onEnd);
    ctx.socket.on('error', this.#onError);
    if (ctx.leftover !== undefined) this.#onData(ctx.leftover);
    ctx.socket.resume();
  }

  async next(): Promise<SetupFrame> {
    for (;;) {
      const f = this.#frames.shift();
      if (f !== undefined) return f;
      if (this.#ended !== undefined) throw this.#ended;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }

  /** Stops reading. Returns false when more than the set-up arrived (nothing may follow it). */
  detach(): boolean {
    const s = this.#ctx.socket;
    s.pause();
    s.off('data', this.#onData);
    s.off('end', this.#onEnd);
    s.off('close', this.#onEnd);
    s.off('error', this.#onError);
    return this.#frames.length === 0 && this.#decoder.bufferedBytes === 0;
  }
}

function checkDetached(reader: SetupReader, ctx: SetupContext): void {
  if (!reader.detach()) throw new WireError(WireErrorCode.MALFORMED, `${ctx.remote} sent more than the RDMA set-up on the side channel`);
}

function sendControl(ctx: SetupContext, kind: number, payload: Buffer, type: FrameType = FrameType.DATA): void {
  const frame = ctx.sealer.seal({
    type,
    cls: 'control',
    flags: FrameFlags.FIRST | FrameFlags.LAST,
    streamId: 0,
    kind,
    tenant: 0,
    messageLength: payload.byteLength,
    parts: [payload],
    payloadLength: payload.byteLength,
  });
  ctx.socket.write(frame);
}

/** Tells the peer why set-up failed (sealed CLOSE), best effort. */
export function refuseSetup(ctx: SetupContext, err: unknown): void {
  if (ctx.socket.destroyed || !ctx.socket.writable) return;
  try {
    const reason = isSluiceError(err) ? (err as Error).message : 'internal error';
    sendControl(ctx, 0, encodeClosePayload(closeCodeFor(err), `RDMA set-up failed: ${reason}`), FrameType.CLOSE);
  } catch {
    // sealing failed: the socket's end says enough
  }
}

async function expect(reader: SetupReader, ctx: SetupContext, kind: number, what: string): Promise<Buffer> {
  const { header, payload } = await reader.next();
  if (header.type === FrameType.CLOSE) {
    const { reason } = decodeClosePayload(payload);
    throw new RdmaError(RdmaErrorCode.PROTOCOL, `${ctx.remote} refused the RDMA link: ${reason}`);
  }
  if (header.type !== FrameType.DATA || header.cls !== 'control' || header.streamId !== 0 || header.kind !== kind) {
    throw new WireError(WireErrorCode.MALFORMED, `${ctx.remote}: expected the RDMA ${what} during set-up, got a ${header.cls} frame of kind ${header.kind} on stream ${header.streamId}`);
  }
  return payload;
}

function withDeadline<T>(p: Promise<T>, ctx: SetupContext): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new TransportError(TransportErrorCode.TIMEOUT, `${ctx.remote}: RDMA set-up did not complete within ${ctx.timeoutMs} ms`)),
      ctx.timeoutMs,
    );
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Initiator: sends our endpoint, connects to the acceptor's, confirms READY.
 * Returns the peer's endpoint; the channel is connected.
 */
export async function setupInitiator(ctx: SetupContext, channel: VerbsChannel): Promise<RdmaEndpoint> {
  const reader = new SetupReader(ctx);
  try {
    const remote = await withDeadline(
      (async () => {
        sendControl(ctx, MessageKind.RDMA_ENDPOINT, encodeEndpoint(channel.local()));
        const r = decodeEndpoint(await expect(reader, ctx, MessageKind.RDMA_ENDPOINT, 'endpoint'));
        channel.connect(r);
        sendControl(ctx, MessageKind.RDMA_READY, Buffer.alloc(0));
        return r;
      })(),
      ctx,
    );
    checkDetached(reader, ctx);
    return remote;
  } catch (err) {
    reader.detach();
    throw err;
  }
}

/**
 * Acceptor: reads the initiator's endpoint, then `makeChannel` (which may fail: no device), connects
 * it, sends our endpoint and waits for READY. Returns the peer's endpoint.
 */
export async function setupAcceptor(ctx: SetupContext, channel: () => VerbsChannel): Promise<{ channel: VerbsChannel; remote: RdmaEndpoint }> {
  const reader = new SetupReader(ctx);
  let made: VerbsChannel | undefined;
  try {
    const result = await withDeadline(
      (async () => {
        const remote = decodeEndpoint(await expect(reader, ctx, MessageKind.RDMA_ENDPOINT, 'endpoint'));
        made = channel();
        made.connect(remote);
        sendControl(ctx, MessageKind.RDMA_ENDPOINT, encodeEndpoint(made.local()));
        const ready = await expect(reader, ctx, MessageKind.RDMA_READY, 'ready');
        if (ready.byteLength !== 0) throw new WireError(WireErrorCode.MALFORMED, `${ctx.remote}: RDMA ready carries ${ready.byteLength} bytes`);
        return { channel: made, remote };
      })(),
      ctx,
    );
    checkDetached(reader, ctx);
    return result;
  } catch (err) {
    reader.detach();
    made?.close();
    throw err;
  }
}
