// The latency-aware outbound scheduler of a link (a LinkScheduler):
//  - strict priority between classes: control, then inference, then training;
//  - within inference and within training, deficit round robin across flows (message by
//    message, so two messages of one class never interleave their frames), so one tenant or one
//    training job cannot starve another;
//  - training frames are cut to the bulk chunk size derived from the link's measured bandwidth
//    and the latency target (an inference frame waits for at most one of them), and when the
//    governor cuts the bulk share below 1 they are paced by a token bucket at
//    share x bandwidth, which keeps the socket and NIC queues short for inference.
import type { TrafficClass } from '../transport/types.ts';
import { BandwidthEstimator } from './bandwidth-estimator.ts';
import type { BulkGovernor } from './bulk-governor.ts';
import { chunkSizeFor } from './chunk-size.ts';
import { DeficitRoundRobin } from './drr.ts';
import { Fifo } from './fifo.ts';
import type { LinkScheduler, LinkSchedulerFactory, LinkSchedulerOptions, QueuedMessage, ScheduledFrame } from './link-scheduler.ts';
import { TokenBucket } from './token-bucket.ts';

export interface FairSchedulerConfig {
  /** Shared by every link of the process; undefined: no pacing (chunk sizing and DRR only). */
  governor?: BulkGovernor;
  /** Inference latency target, milliseconds (chunk sizing). */
  latencyTargetMs: number;
  /** Fraction of the target one bulk chunk may occupy the wire. */
  chunkBudgetFraction: number;
  minChunkBytes: number;
  /**
   * The links carry bulk (the training segment): while inference runs in this process they
   * seal and take in at most one bulk frame per event-loop turn (see turnBytes()).
   */
  slicesBulkTurns?: boolean;
  /** DRR quantum of each class (bytes of credit per round). */
  quantumBytes: number;
  /** Clock in milliseconds (performance.now by default): injectable for tests. */
  now?: () => number;
}

type DrrClass = 'inference' | 'training';

/** Upper bound on how long a paced scheduler sleeps before looking again, milliseconds. */
const MAX_PACING_SLEEP_MS = 50;

export class FairLinkScheduler implements LinkScheduler {
  private readonly control = new Fifo<QueuedMessage>();
  private readonly drr: Record<DrrClass, DeficitRoundRobin<QueuedMessage>>;
  private readonly current: Record<DrrClass, QueuedMessage | undefined> = { inference: undefined, training: undefined };
  private readonly frameBytes: Readonly<Record<TrafficClass, number>>;
  private readonly wake: (() => void) | undefined;
  private readonly cfg: FairSchedulerConfig;
  private readonly now: () => number;
  readonly bandwidth = new BandwidthEstimator();
  private readonly bucket: TokenBucket;
  private wakeTimer: NodeJS.Timeout | undefined;
  private bytes = 0;
  private messages = 0;
  /** Training frames held back by pacing so far (a metric). */
  pacedWaits = 0;

  constructor(opts: LinkSchedulerOptions, cfg: FairSchedulerConfig) {
    for (const cls of ['control', 'inference', 'training'] as const) {
      const n = opts.frameBytes[cls];
      if (!Number.isInteger(n) || n < 1) throw new RangeError(`frameBytes.${cls} must be a positive integer, got ${n}`);
    }
    if (!(cfg.minChunkBytes >= 1 && cfg.minChunkBytes <= opts.frameBytes.training)) {
      throw new RangeError(`minChunkBytes must be in [1, frameBytes.training=${opts.frameBytes.training}], got ${cfg.minChunkBytes}`);
    }
    this.frameBytes = { ...opts.frameBytes };
    this.wake = opts.wake;
    this.cfg = cfg;
    this.now = cfg.now ?? (() => performance.now());
    this.drr = { inference: new DeficitRoundRobin(cfg.quantumBytes), training: new DeficitRoundRobin(cfg.quantumBytes) };
    this.bucket = new TokenBucket(Infinity, opts.frameBytes.training, this.now());
  }

  get queuedBytes(): number {
    return this.bytes;
  }

  get queuedMessages(): number {
    return this.messages;
  }

  /**
   * On a bulk link while inference runs in this process: one bulk frame (at most
   * frameBytes.training) per event-loop turn, sealing or receiving, so an inference request
   * waits behind at most that much work here, as an inference frame waits behind at most one
   * chunk on the wire. Otherwise the transport's default (long turns cost less CPU per byte).
   */
  turnBytes(): number | undefined {
    const governor = this.cfg.governor;
    if (this.cfg.slicesBulkTurns !== true || governor === undefined || !governor.inferenceActive(this.now())) return undefined;
    return this.frameBytes.training;
  }

  /** The bulk chunk size this link uses now (bandwidth x latency budget, bounded). */
  get trainingFrameBytes(): number {
    return chunkSizeFor(this.bandwidth.bytesPerSec, {
      latencyTargetMs: this.cfg.latencyTargetMs,
      budgetFraction: this.cfg.chunkBudgetFraction,
      minBytes: this.cfg.minChunkBytes,
      maxBytes: this.frameBytes.training,
    });
  }

  enqueue(msg: QueuedMessage): void {
    const n = msg.cursor.remaining;
    if (msg.cls === 'control') this.control.push(msg);
    else this.drr[msg.cls].push(msg.flow, msg, n);
    this.bytes += n;
    this.messages += 1;
  }

  next(): ScheduledFrame | undefined {
    const c = this.control.peek();
    if (c !== undefined) return this.take(c, this.frameBytes.control, () => this.control.shift());
    const inf = this.head('inference');
    if (inf !== undefined) return this.take(inf, this.frameBytes.inference, () => (this.current.inference = undefined));
    const tr = this.head('training');
    if (tr === undefined) {
      this.bandwidth.onIdle();
      return undefined;
    }
    const now = this.now();
    const size = Math.min(this.trainingFrameBytes, tr.cursor.remaining);
    const paced = this.pace(size, now);
    if (paced) return undefined;
    const frame = this.take(tr, size, () => (this.current.training = undefined));
    if (this.bucket.rate === Infinity) this.bandwidth.onBusyDrain(frame.length, now);
    else this.bandwidth.onIdle(); // paced hand-outs measure the pace, not the link
    return frame;
  }

  clear(): QueuedMessage[] {
    const dropped: QueuedMessage[] = [...this.control.drain()];
    for (const cls of ['inference', 'training'] as const) {
      const cur = this.current[cls];
      if (cur !== undefined) dropped.push(cur);
      this.current[cls] = undefined;
      for (let m = this.drr[cls].shift(); m !== undefined; m = this.drr[cls].shift()) dropped.push(m);
    }
    if (this.wakeTimer !== undefined) clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    this.bytes = 0;
    this.messages = 0;
    return dropped;
  }

  /** The message whose frames go next in a class: the one in progress, else the DRR's pick. */
  private head(cls: DrrClass): QueuedMessage | undefined {
    let m = this.current[cls];
    if (m === undefined) {
      m = this.drr[cls].shift();
      this.current[cls] = m;
    }
    return m;
  }

  private take(msg: QueuedMessage, max: number, onLast: () => void): ScheduledFrame {
    const before = msg.cursor.taken;
    const parts = msg.cursor.take(max);
    const length = msg.cursor.taken - before;
    const first = before === 0;
    const last = msg.cursor.remaining === 0;
    if (last) {
      onLast();
      this.messages -= 1;
    }
    this.bytes -= length;
    return { msg, first, last, parts, length };
  }

  /** True when the bulk pace holds this frame back; a wake-up is then armed. */
  private pace(size: number, now: number): boolean {
    const governor = this.cfg.governor;
    // Without a way to be woken, holding a frame back would stall the link: do not pace.
    if (governor === undefined || this.wake === undefined) return false;
    const share = governor.share(now);
    // Only a settled estimate: the first busy intervals of a link measure its start-up.
    const bw = this.bandwidth.settledBytesPerSec;
    const rate = share >= 1 || bw <= 0 ? Infinity : share * bw;
    if (rate !== this.bucket.rate) this.bucket.configure(rate, Math.max(size, this.frameBytes.training), now);
    const wait = this.bucket.take(size, now);
    if (wait === 0) return false;
    this.pacedWaits += 1;
    if (this.wakeTimer === undefined) {
      const wake = this.wake;
      this.wakeTimer = setTimeout(() => {
        this.wakeTimer = undefined;
        wake();
      }, Math.min(MAX_PACING_SLEEP_MS, Math.max(1, Math.ceil(wait))));
      this.wakeTimer.unref();
    }
    return true;
  }
}

export function fairLinkSchedulerFactory(cfg: FairSchedulerConfig): LinkSchedulerFactory {
  return (opts) => new FairLinkScheduler(opts, cfg);
}
