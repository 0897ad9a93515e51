// The Transport contract shared by every back-end link implementation (tcp, rdma).
// A link carries whole messages of any size; the implementation frames, encrypts,
// schedules and reassembles them. See docs/wire.md for the frame format.
import type { EventEmitter } from 'node:events';
import type { AeadFactory } from '../crypto/aead-factory.ts';
import type { KeyLimits } from '../crypto/key-limits.ts';
import type { LinkSchedulerFactory } from '../scheduler/link-scheduler.ts';
import type { ReceivePool } from '../wire/receive-pool.ts';

export type SegmentName = 'inference' | 'training';
export const SEGMENTS: readonly SegmentName[] = ['inference', 'training'];

/** Traffic class of a message: decides priority on the link and which segment may carry it. */
export type TrafficClass = 'control' | 'inference' | 'training';

export type TransportKind = 'tcp' | 'rdma';

export interface OutboundMessage {
  cls: TrafficClass;
  /** Application message kind, u16 (see src/wire/message-kinds.ts). */
  kind: number;
  /** Correlates a request with its response(s), u32; 0 is reserved for link control. */
  streamId: number;
  /** Tenant id (u32) bound into every frame's authenticated data (0 = system). */
  tenant?: number;
  /** Gather list: the transport copies at most once (into the sealed frame). Do not modify until sent. */
  body: Buffer | readonly Buffer[];
  /** Bulk flow id for fair sharing inside the training class (default: streamId). */
  flow?: number;
  /**
   * Called once when the link no longer reads `body`: its last frame is sealed, or the message
   * was dropped (the link closed). A pooled body may be reused from then on. Not called when
   * send() throws (nothing was queued).
   */
  bodyReleased?: () => void;
}

export interface InboundMessage {
  cls: TrafficClass;
  kind: number;
  streamId: number;
  tenant: number;
  body: Buffer;
  /**
   * Set when `body` is a slab of the link's receive pool (LinkTuning.receivePool): the
   * consumer must call it exactly when done with `body` (the slab is then reused; the link
   * stops reading while the pool is empty). Absent: `body` is the consumer's own buffer.
   */
  release?: () => void;
}

export interface LinkStats {
  framesSent: number;
  framesReceived: number;
  /** Bytes on the wire (frames, headers and tags included). */
  bytesSent: number;
  bytesReceived: number;
  messagesSent: number;
  messagesReceived: number;
  /** Bytes accepted by send() but not yet written to the wire. */
  queuedBytes: number;
  rejectedFrames: number;
  /** Key changes in both directions together. */
  rekeys: number;
}

/** Why a link closed, given to its 'close' event. */
export interface LinkCloseInfo {
  /** 'local': close() was called here; 'peer': the peer sent a close frame; 'error': anything else. */
  by: 'local' | 'peer' | 'error';
  /** A CloseCode of src/wire/close-frame.ts. */
  code: number;
  reason: string;
  /** Set when by === 'error' (a SluiceError with a stable code: WireError, TransportError, ...). */
  error?: Error;
}

/**
 * A live, authenticated, encrypted link to one peer on one segment.
 * Events: 'message' (InboundMessage), 'drain' (), 'close' (LinkCloseInfo; emitted once).
 * A link never emits 'error': failures end it and arrive with 'close'.
 */
export interface Link extends EventEmitter {
  /** Same on both ends (derived from the handshake transcript), for logs. */
  readonly id: string;
  readonly segment: SegmentName;
  readonly transport: TransportKind;
  readonly remoteAddress: string;
  readonly closed: boolean;
  /**
   * Queue a message. Returns false when queued bytes exceed the high-water mark: wait for
   * 'drain'. Throws (SluiceError) when the link is closed or the message is invalid, too
   * big, or of a class the segment may not carry.
   */
  send(msg: OutboundMessage): boolean;
  /** Stop delivering messages and stop reading from the peer (its sends then back up). */
  pause(): void;
  resume(): void;
  /**
   * Close the link, telling the peer why: queued messages are sent first (within the close
   * timeout), then a close frame. Resolves once resources are released.
   */
  close(reason?: string): Promise<void>;
  stats(): LinkStats;
}

export interface ListenOptions {
  segment: SegmentName;
  host: string;
  port: number;
  /** 32-byte pre-shared segment key; authenticates both ends and seeds the link keys. */
  segmentKey: Buffer;
  maxMessageBytes?: number;
  /** RDMA: device name, or netdev/GID it sits on. */
  device?: string;
  /** Handshake deadline of this listener's connections (default: the transport's). */
  handshakeTimeoutMs?: number;
  /** Connections held at once (handshaking or linked); more are closed on accept and reported as 'rejected' (BUSY). */
  maxConnections?: number;
}

export interface ConnectOptions {
  segment: SegmentName;
  host: string;
  port: number;
  segmentKey: Buffer;
  maxMessageBytes?: number;
  device?: string;
  /** Abort the connection attempt (connect + handshake) after this many milliseconds. */
  timeoutMs?: number;
}

/**
 * Events: 'link' (Link), 'rejected' (err: SluiceError, remoteAddress: string) for a peer that
 * failed the handshake, 'error' (Error) for failures of the listener itself.
 */
export interface Listener extends EventEmitter {
  readonly address: { host: string; port: number };
  /** Stops accepting; links already established stay open. */
  close(): Promise<void>;
}

/** Tuning shared by every link of a transport. */
export interface LinkTuning {
  /** send() returns false above this many queued bytes (default 8 MiB). */
  highWaterMark?: number;
  /** Largest frame payload per class (default control 64 KiB, inference 256 KiB, training 256 KiB; 1 MiB on rdma). */
  frameBytes?: Partial<Record<TrafficClass, number>>;
  /** Bytes of partly received messages a link may hold (default 2 x maxMessageBytes, at least 64 MiB). */
  maxReassemblyBytes?: number;
  /**
   * Sealed bytes a link keeps ahead of the socket (default 1 MiB). More keeps a fast wire
   * busier; less lets an urgent frame overtake sooner (it waits behind at most this much,
   * plus the kernel's socket buffer).
   */
  sealAheadBytes?: number;
  /**
   * Pooled receive buffers for messages of the training class (TCP links): decrypted into
   * the pool's slabs and delivered with InboundMessage.release; reading stops while the pool
   * is empty. Default: none (every message a new buffer).
   */
  receivePool?: ReceivePool;
  /** Size of each of the two reusable read buffers of a TCP link (default 2 MiB). */
  receiveBufferBytes?: number;
  /** How long close() waits for queued messages and the peer (default 5 s). */
  closeTimeoutMs?: number;
  /**
   * After this long without sending, a link that sent frames since its last witness sends one
   * REKEY frame, so the peer's sequence check covers the last frame and a dropped one is
   * found within this bound, not at the next message (default 200 ms; 0 turns it off). See
   * link-base.ts and docs/wire.md.
   */
  tailWitnessMs?: number;
  /** Key limits (tests lower them to exercise rekey; never above the defaults). */
  keyLimits?: KeyLimits;
  /** The outbound scheduler (default: PriorityLinkScheduler). */
  scheduler?: LinkSchedulerFactory;
}

export interface TransportOptions {
  /** AES-256-GCM implementation (default: the native addon when it loads, else node:crypto). */
  aeadFactory?: AeadFactory;
  link?: LinkTuning;
  /** Handshake deadline for accepted connections and connect() without timeoutMs (default 10 s). */
  handshakeTimeoutMs?: number;
  /**
   * How the segment's packets are marked (segments.<name>.dscp): IP_TOS / IPV6_TCLASS = dscp << 2
   * and SO_PRIORITY on TCP link sockets, the GRH traffic class on RDMA queue pairs.
   */
  socketClass?: SocketClassOptions;
}

export interface SocketClassOptions {
  /** DSCP code point, 0..63. */
  dscp: number;
  /** SO_PRIORITY, 0..6 (unprivileged range). */
  priority: number;
}

export interface Transport {
  readonly kind: TransportKind;
  listen(opts: ListenOptions): Promise<Listener>;
  connect(opts: ConnectOptions): Promise<Link>;
}
