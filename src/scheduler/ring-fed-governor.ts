// The bulk governor of the training thread: the same AIMD controller as the main thread's,
// fed by the inference samples the main thread writes into a LatencySampleRing. It drains the
// ring whenever a training link asks for the share (the only time the answer matters) and
// publishes its state back through the ring's stats for metrics on the main thread.
import { BulkGovernor, type BulkGovernorOptions } from './bulk-governor.ts';
import type { LatencySampleRing } from './latency-sample-ring.ts';

/** The published state is for metrics (scraped every few seconds): refreshed at most this often. */
const PUBLISH_INTERVAL_MS = 100;

export class RingFedGovernor extends BulkGovernor {
  private readonly ring: LatencySampleRing;
  private readonly onSample = (latencyMs: number, nowMs: number): void => this.recordInference(latencyMs, nowMs);
  private readonly onNote = (nowMs: number): void => this.noteInference(nowMs);
  private lastPublish = -Infinity;

  constructor(ring: LatencySampleRing, opts: BulkGovernorOptions) {
    super(opts);
    this.ring = ring;
  }

  override share(nowMs: number): number {
    this.ring.drain(this.onSample, this.onNote);
    const share = super.share(nowMs);
    if (nowMs - this.lastPublish >= PUBLISH_INTERVAL_MS) {
      this.lastPublish = nowMs;
      this.ring.publish(super.snapshot(nowMs));
    }
    return share;
  }

  override inferenceActive(nowMs: number): boolean {
    this.ring.drain(this.onSample, this.onNote);
    return super.inferenceActive(nowMs);
  }
}
