// The RDMA transport: frames over libibverbs RC queue pairs (src/transport/rdma/*). A TCP
// connection is the side channel: it carries the same authenticated handshake as the TCP
// transport, then the queue pairs' endpoints (sealed frames), and afterwards only tells each
// end that the other is still there. The device is the one named in the options, else the one
// holding the side channel's local address, else the first with an active port.
import net from 'node:net';
import { defaultAeadFactory, type AeadFactory } from '../crypto/aead-factory.ts';
import type { LinkRole } from '../crypto/key-schedule.ts';
import { TrafficKeys } from '../crypto/traffic-keys.ts';
import { isSluiceError } from '../errors.ts';
import { frameBytes } from '../wire/frame-header.ts';
import { FrameOpener } from '../wire/frame-opener.ts';
import { FrameSealer } from '../wire/frame-sealer.ts';
import { checkEndpointOptions, whenConnected } from './dial.ts';
import { TransportError, TransportErrorCode } from './errors.ts';
import { endThenDestroy, performHandshake, type HandshakeResult } from './handshake.ts';
import { HandshakeListener } from './handshake-listener.ts';
import { DataEventInput, type ByteInput } from './socket-input.ts';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, resolveLinkTuning, type ResolvedLinkTuning } from './link-tuning.ts';
import { RdmaDevice } from './rdma/devices.ts';
import { RdmaError, RdmaErrorCode } from './rdma/rdma-errors.ts';
import { RdmaLink } from './rdma/rdma-link.ts';
import { refuseSetup, setupAcceptor, setupInitiator, type SetupContext } from './rdma/rdma-setup.ts';
import { VerbsChannel, type VerbsChannelOptions } from './rdma/verbs-channel.ts';
import type { ConnectOptions, Link, LinkTuning, ListenOptions, Listener, SegmentName, Transport, TransportOptions } from './types.ts';

/** Queue pair sizing per link. */
export interface RdmaTuning {
  /** Frames in flight from this end, each in its own registered send slot (default 16). */
  sendSlots?: number;
  /** Frames the peer may send before this end reposts their buffers: its credits (default 16). */
  recvWindow?: number;
  /** Local ACK timeout exponent, 4.096 us * 2^n (default 16, about 268 ms). */
  ackTimeout?: number;
  /** Retransmissions before a send fails (default 6; rdma_rxe takes 7 as "forever"). */
  retryCount?: number;
}

export interface RdmaTransportOptions extends TransportOptions {
  rdma?: RdmaTuning;
}

const SLOT_ALIGN = 4096;

/**
 * Training frame payload on RDMA links unless tuned (TCP's default is 256 KiB). A training link
 * carries only control and training frames (inference has its own segment), so a larger frame
 * delays no inference frame; it quarters the work requests and completions per byte, and with
 * the credit window counted in frames it quadruples the bytes in flight. Measured on rxe: about
 * 0.5x ib_write_bw with 256 KiB frames, 0.75-1.3x with 1 MiB (docs/rdma.md). Cost: registered
 * slots of 1 MiB on training links (36 per link, about 37 MiB).
 */
export const RDMA_TRAINING_FRAME_BYTES = 1024 * 1024;

/** Registered slot size for a link: the largest frame its segment carries, header and tag included. */
export function slotBytesFor(tuning: ResolvedLinkTuning, segment: SegmentName): number {
  const payload = Math.max(tuning.frameBytes.control, tuning.frameBytes[segment]);
  return Math.ceil(frameBytes(payload) / SLOT_ALIGN) * SLOT_ALIGN;
}

/** An IPv4 address a GID can be mapped from, or undefined (wildcards, loopback, IPv6). */
function deviceAddress(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (!net.isIPv4(v4) || v4 === '0.0.0.0' || v4.startsWith('127.')) return undefined;
  return v4;
}

function ignoreError(): void {}

class RdmaListener extends HandshakeListener {
  /** The device links on this listener use unless the side channel's address names another. */
  readonly device: RdmaDevice;

  constructor(server: net.Server, device: RdmaDevice) {
    super(server);
    this.device = device;
  }
}

export class RdmaTransport implements Transport {
  readonly kind = 'rdma' as const;
  readonly #aeadFactory: AeadFactory;
  readonly #opts: RdmaTransportOptions;
  readonly #handshakeTimeoutMs: number;
  /** The tuning links run with: the caller's, with RDMA's own training frame default. */
  readonly #linkTuning: LinkTuning;
  readonly #devices = new Map<string, RdmaDevice>();

  constructor(opts: RdmaTransportOptions = {}) {
    this.#opts = opts;
    this.#aeadFactory = opts.aeadFactory ?? defaultAeadFactory();
    this.#handshakeTimeoutMs = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.#linkTuning = { ...opts.link, frameBytes: { training: RDMA_TRAINING_FRAME_BYTES, ...opts.link?.frameBytes } };
    resolveLinkTuning(this.#linkTuning, undefined); // fail fast on bad tuning
  }

  /** Opens (once) the device `spec` names; throws RdmaError NO_DEVICE listing the devices there are. */
  #open(spec: string): RdmaDevice {
    let d = this.#devices.get(spec);
    if (d === undefined) {
      d = RdmaDevice.open(spec);
      this.#devices.set(spec, d);
    }
    return d;
  }

  /** The configured device, else the one holding `address`, else `fallback` or the first active one. */
  #deviceFor(configured: string | undefined, address: string | undefined, fallback?: RdmaDevice): RdmaDevice {
    if (configured !== undefined) return this.#open(configured);
    const ip = deviceAddress(address);
    if (ip !== undefined) {
      try {
        return this.#open(ip);
      } catch (err) {
        if (!(err instanceof RdmaError && err.code === RdmaErrorCode.NO_DEVICE)) throw err;
      }
    }
    return fallback ?? this.#open('');
  }

  #channelOptions(tuning: ResolvedLinkTuning, segment: SegmentName): VerbsChannelOptions {
    const r = this.#opts.rdma ?? {};
    return {
      sendSlots: r.sendSlots ?? 16,
      recvWindow: r.recvWindow ?? 16,
      slotBytes: slotBytesFor(tuning, segment),
      ...(r.ackTimeout !== undefined && { ackTimeout: r.ackTimeout }),
      ...(r.retryCount !== undefined && { retryCount: r.retryCount }),
      ...(this.#opts.socketClass !== undefined && { trafficClass: this.#opts.socketClass.dscp << 2 }),
    };
  }

  #keys(handshake: HandshakeResult, segment: SegmentName, tuning: ResolvedLinkTuning): { sealer: FrameSealer; opener: FrameOpener } {
    const { secrets } = handshake;
    const sealer = new FrameSealer(new TrafficKeys(secrets.send, secrets.sendDirection, this.#aeadFactory, tuning.keyLimits), segment);
    const opener = new FrameOpener(new TrafficKeys(secrets.receive, secrets.receiveDirection, this.#aeadFactory, tuning.keyLimits));
    secrets.send.fill(0);
    secrets.receive.fill(0);
    return { sealer, opener };
  }

  async listen(opts: ListenOptions): Promise<Listener> {
    checkEndpointOptions(opts);
    const tuning = resolveLinkTuning(this.#linkTuning, opts.maxMessageBytes);
    const channelOptions = this.#channelOptions(tuning, opts.segment);
    // Fail fast, before binding, when there is no device to serve this segment on.
    const listenDevice = this.#deviceFor(opts.device, opts.host);
    const segmentKey = Buffer.from(opts.segmentKey);
    const server = net.createServer({ noDelay: true, allowHalfOpen: true });
    const listener = new RdmaListener(server, listenDevice);
    server.on('connection', (socket) => {
      socket.on('error', ignoreError);
      const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
      if (!listener.admit(socket, remote)) return;
      listener.follow(socket, remote, this.#accept(socket, remote, opts, segmentKey, tuning, channelOptions, listener));
    });
    await listener.bind(opts.host, opts.port, opts.segment, opts.maxConnections);
    return listener;
  }

  async #accept(
    socket: net.Socket,
    remote: string,
    opts: ListenOptions,
    segmentKey: Buffer,
    tuning: ResolvedLinkTuning,
    channelOptions: VerbsChannelOptions,
    listener: RdmaListener,
  ): Promise<RdmaLink | undefined> {
    const started = Date.now();
    const budgetMs = opts.handshakeTimeoutMs ?? this.#handshakeTimeoutMs;
    const input = sideChannelInput(socket);
    const handshake = await performHandshake(socket, { role: 'acceptor', segment: opts.segment, segmentKey, timeoutMs: budgetMs, remote }, input);
    afterHandshake(input);
    if (socket.destroyed) return undefined;
    const { sealer, opener } = this.#keys(handshake, opts.segment, tuning);
    const ctx: SetupContext = {
      socket,
      segment: opts.segment,
      sealer,
      opener,
      leftover: handshake.leftover,
      timeoutMs: Math.max(1, budgetMs - (Date.now() - started)),
      remote,
    };
    let device = listener.device;
    try {
      const { channel } = await setupAcceptor(ctx, () => {
        device = this.#deviceFor(opts.device, socket.localAddress, listener.device);
        return new VerbsChannel(device, channelOptions);
      });
      return this.#link(socket, channel, opts.segment, 'acceptor', handshake, sealer, opener, tuning, device);
    } catch (err) {
      refuseSetup(ctx, err);
      sealer.destroy();
      opener.destroy();
      endThenDestroy(socket, undefined, input);
      throw err;
    }
  }

  #link(
    socket: net.Socket,
    channel: VerbsChannel,
    segment: SegmentName,
    role: LinkRole,
    handshake: HandshakeResult,
    sealer: FrameSealer,
    opener: FrameOpener,
    tuning: ResolvedLinkTuning,
    device: RdmaDevice,
  ): RdmaLink {
    socket.off('error', ignoreError);
    return new RdmaLink({ socket, channel, segment, role, linkId: handshake.linkId, sealer, opener, tuning, device: device.info.name });
  }

  async connect(opts: ConnectOptions): Promise<Link> {
    checkEndpointOptions(opts);
    const tuning = resolveLinkTuning(this.#linkTuning, opts.maxMessageBytes);
    const channelOptions = this.#channelOptions(tuning, opts.segment);
    if (opts.device !== undefined) this.#open(opts.device); // fail fast: no such device
    const timeoutMs = opts.timeoutMs ?? this.#handshakeTimeoutMs;
    const started = Date.now();
    const remote = `${opts.host}:${opts.port}`;
    const socket = net.connect({ host: opts.host, port: opts.port, noDelay: true, allowHalfOpen: true });
    socket.on('error', ignoreError);
    await whenConnected(socket, opts.segment, remote, timeoutMs);
    const input = sideChannelInput(socket);
    let handshake: HandshakeResult;
    try {
      handshake = await performHandshake(socket, {
        role: 'initiator',
        segment: opts.segment,
        segmentKey: opts.segmentKey,
        timeoutMs: Math.max(1, timeoutMs - (Date.now() - started)),
        remote,
      }, input);
      afterHandshake(input);
    } catch (err) {
      throw isSluiceError(err) ? err : new TransportError(TransportErrorCode.CONNECT, `handshake with ${remote} failed: ${String(err)}`, { cause: err });
    }
    const { sealer, opener } = this.#keys(handshake, opts.segment, tuning);
    const ctx: SetupContext = {
      socket,
      segment: opts.segment,
      sealer,
      opener,
      leftover: handshake.leftover,
      timeoutMs: Math.max(1, timeoutMs - (Date.now() - started)),
      remote,
    };
    let channel: VerbsChannel | undefined;
    try {
      const device = this.#deviceFor(opts.device, socket.localAddress);
      channel = new VerbsChannel(device, channelOptions);
      await setupInitiator(ctx, channel);
      return this.#link(socket, channel, opts.segment, 'initiator', handshake, sealer, opener, tuning, device);
    } catch (err) {
      channel?.close();
      refuseSetup(ctx, err);
      sealer.destroy();
      opener.destroy();
      endThenDestroy(socket, undefined, input);
      throw err;
    }
  }
}

// The side channel is small control traffic after the handshake: plain 'data' events suffice.
function sideChannelInput(socket: net.Socket): ByteInput {
  return new DataEventInput(socket);
}

// Set-up code reads the socket's own 'data' events after the handshake (the handshake hands back
// its leftover bytes); drop the input's copies so it buffers nothing for the link's lifetime.
function afterHandshake(input: ByteInput): void {
  input.attach(() => undefined);
}
