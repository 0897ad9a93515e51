// The Transport contract shared by every back-end link implementation (tcp, rdma).
// A link carries whole messages of any size; the implementation frames, encrypts,
// schedules and reassembles them. See docs/wire.md for the frame format.
import type { EventEmitter } from 'node:events';

export type SegmentName = 'inference' | 'training';
export const SEGMENTS: readonly SegmentName[] = ['inference', 'training'];

/** Traffic class of a message: decides priority on the link and which segment may carry it. */
export type TrafficClass = 'control' | 'inference' | 'training';

export type TransportKind = 'tcp' | 'rdma';

export interface OutboundMessage {
  cls: TrafficClass;
  /** Application message kind (see src/wire/message-kinds.ts). */
  kind: number;
  /** Correlates a request with its response(s); 0 is reserved for link control. */
  streamId: number;
  /** Tenant id bound into every frame's authenticated data (0 = system). */
  tenant?: number;
  /** Gather list: the transport copies at most once (into the sealed frame). */
  body: Buffer | readonly Buffer[];
  /** Bulk flow id for fair sharing inside the training class (default: streamId). */
  flow?: number;
}

export interface InboundMessage {
  cls: TrafficClass;
  kind: number;
  streamId: number;
  tenant: number;
  body: Buffer;
}

export interface LinkStats {
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  messagesSent: number;
  messagesReceived: number;
  /** Bytes accepted by send() but not yet written to the wire. */
  queuedBytes: number;
  rejectedFrames: number;
}

/**
 * A live, authenticated, encrypted link to one peer on one segment.
 * Events: 'message' (InboundMessage), 'drain' (), 'close' (error: Error | undefined).
 */
export interface Link extends EventEmitter {
  readonly id: string;
  readonly segment: SegmentName;
  readonly transport: TransportKind;
  readonly remoteAddress: string;
  readonly closed: boolean;
  /** Queue a message. Returns false when queued bytes exceed the high-water mark: wait for 'drain'. */
  send(msg: OutboundMessage): boolean;
  /** Close the link, telling the peer why. Resolves once resources are released. */
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
}

export interface ConnectOptions {
  segment: SegmentName;
  host: string;
  port: number;
  segmentKey: Buffer;
  maxMessageBytes?: number;
  device?: string;
  /** Abort the connection attempt after this many milliseconds. */
  timeoutMs?: number;
}

export interface Listener extends EventEmitter {
  /** Events: 'link' (Link), 'error' (Error). */
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

export interface Transport {
  readonly kind: TransportKind;
  listen(opts: ListenOptions): Promise<Listener>;
  connect(opts: ConnectOptions): Promise<Link>;
}
