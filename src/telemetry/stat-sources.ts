// What data-path components hand the metrics registry so it can read them at scrape time.
// Each source is a cheap function returning plain numbers it already keeps; it is called once
// per scrape (never per counter), so an RDMA source may read a typed-array view of native
// counters but must not make a native call per value.
import type { SegmentName, TrafficClass } from '../transport/types.ts';

/** A link scheduler's queues right now. */
export interface QueueSnapshot {
  /** Messages waiting per class. */
  readonly depth: Partial<Record<TrafficClass, number>>;
  /** Bytes waiting per class. */
  readonly bytes: Partial<Record<TrafficClass, number>>;
  /** Fraction (0..1) of the link's send capacity currently granted to bulk (training) traffic. */
  readonly bulkShare?: number;
}

export interface QueueSource {
  readonly segment: SegmentName;
  snapshot(): QueueSnapshot;
}

/** One RDMA device's counters (monotonic unless said otherwise). */
export interface RdmaSnapshot {
  /** Work completions by opcode (send, recv, rdma_write, rdma_read, ...). */
  readonly completions: Readonly<Record<string, number>>;
  /** Failed work completions by ibv_wc_status_str (e.g. "retry counter exceeded"). */
  readonly completionErrors: Readonly<Record<string, number>>;
  /** Bytes in registered memory regions right now (gauge). */
  readonly registeredBytes: number;
  /** Queue pairs in RTS right now (gauge). */
  readonly queuePairs: number;
}

export interface RdmaSource {
  readonly device: string;
  snapshot(): RdmaSnapshot;
}

/** Configuration reload outcomes, kept by the lifecycle manager. */
export interface ReloadStats {
  success: number;
  failure: number;
  /** Unix seconds of the last successful reload (0 = never). */
  lastSuccessSeconds: number;
}
