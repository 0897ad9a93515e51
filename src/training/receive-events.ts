// What the receiving side hands to jobs: the events of the Subscribe and Pull streams (the same
// shapes as the proto's ReceiveEvent, camelCase), and the subscriber contract.
import type { Sink, TensorMeta } from './tensor-meta.ts';

export type ReceiveEvent =
  | { begin: { transferId: string; from: string; tensor: TensorMeta; totalBytes: number; sink: Sink; offset: number } }
  | { data: { transferId: string; offset: number; data: Buffer } }
  | { end: { transferId: string; totalBytes: number; sha256: Buffer } }
  | { aborted: { transferId: string; reason: string } };

export interface Subscriber {
  /** Only tensors whose name starts with this prefix. */
  readonly namePrefix: string;
  /** Also announce SPOOL-sink tensors (begin and end, without data). */
  readonly includeSpooled: boolean;
  readonly closed: boolean;
  /**
   * Delivers one event; resolves once the consumer's stream took it (backpressure). A `data`
   * event's buffer may be a pooled receive buffer that is reused once this resolves: a
   * consumer that keeps the bytes longer copies them (a gRPC stream has serialized them by then).
   */
  send(event: ReceiveEvent): Promise<void>;
}
