// Queue depth, queued bytes and scheduling delay per traffic class, measured by wrapping a link
// scheduler factory: every scheduler of a segment adds into one shared SegmentQueueStats (plain
// numbers), which the metrics registry reads at scrape time. A closing link clears its
// scheduler, which takes its messages back out, so nothing needs unregistering.
import type { LinkScheduler, LinkSchedulerFactory, QueuedMessage, ScheduledFrame } from '../scheduler/link-scheduler.ts';
import type { SegmentName, TrafficClass } from '../transport/types.ts';
import type { BucketHistogram } from './bucket-histogram.ts';
import type { QueueSnapshot, QueueSource } from './stat-sources.ts';

export class SegmentQueueStats implements QueueSource {
  readonly depth: Record<TrafficClass, number> = { control: 0, inference: 0, training: 0 };
  readonly bytes: Record<TrafficClass, number> = { control: 0, inference: 0, training: 0 };
  /** Reads the bulk share of the segment's rate controller, when there is one. */
  bulkShare: (() => number) | undefined;

  constructor(
    readonly segment: SegmentName,
    /** Time from enqueue to the message's first frame leaving, per class. */
    readonly delay: Readonly<Record<TrafficClass, BucketHistogram>>,
  ) {}

  snapshot(): QueueSnapshot {
    const share = this.bulkShare?.();
    return share === undefined ? { depth: { ...this.depth }, bytes: { ...this.bytes } } : { depth: { ...this.depth }, bytes: { ...this.bytes }, bulkShare: share };
  }
}

class InstrumentedScheduler implements LinkScheduler {
  readonly #inner: LinkScheduler;
  readonly #stats: SegmentQueueStats;
  readonly #enqueuedAt = new WeakMap<QueuedMessage, number>();

  constructor(inner: LinkScheduler, stats: SegmentQueueStats) {
    this.#inner = inner;
    this.#stats = stats;
  }

  get queuedBytes(): number {
    return this.#inner.queuedBytes;
  }

  get queuedMessages(): number {
    return this.#inner.queuedMessages;
  }

  enqueue(msg: QueuedMessage): void {
    const n = msg.cursor.remaining;
    this.#inner.enqueue(msg);
    this.#stats.depth[msg.cls] += 1;
    this.#stats.bytes[msg.cls] += n;
    this.#enqueuedAt.set(msg, performance.now());
  }

  next(): ScheduledFrame | undefined {
    const f = this.#inner.next();
    if (f === undefined) return f;
    const cls = f.msg.cls;
    this.#stats.bytes[cls] -= f.length;
    if (f.first) {
      const t = this.#enqueuedAt.get(f.msg);
      if (t !== undefined) this.#stats.delay[cls].observe((performance.now() - t) / 1000);
    }
    if (f.last) {
      this.#stats.depth[cls] -= 1;
      this.#enqueuedAt.delete(f.msg);
    }
    return f;
  }

  turnBytes(): number | undefined {
    return this.#inner.turnBytes?.();
  }

  clear(): QueuedMessage[] {
    const dropped = this.#inner.clear();
    for (const m of dropped) {
      this.#stats.depth[m.cls] -= 1;
      this.#stats.bytes[m.cls] -= m.cursor.remaining;
      this.#enqueuedAt.delete(m);
    }
    return dropped;
  }
}

/** A scheduler factory whose schedulers report into `stats` (one per segment). */
export function instrumentScheduler(factory: LinkSchedulerFactory, stats: SegmentQueueStats): LinkSchedulerFactory {
  return (opts) => new InstrumentedScheduler(factory(opts), stats);
}
