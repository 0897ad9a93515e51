// The bulk governor of the training thread: the same AIMD controller as the main thread's,
// fed by the inference samples the main thread writes into a LatencySampleRing and by the
// ring the native engine's ingress writes (its answered calls, no JavaScript per call). It
// drains the rings whenever a training link asks for the share, and on its own tick (so the
// share follows inference between transfers and the published state stays fresh), and
// publishes its state back through the first ring's stats for metrics on the main thread.
import { BulkGovernor, type BulkGovernorOptions } from './bulk-governor.ts';
import type { LatencySampleRing } from './latency-sample-ring.ts';

/** The published state is for metrics (scraped every few seconds): refreshed at most this often. */
const PUBLISH_INTERVAL_MS = 100;

export class RingFedGovernor extends BulkGovernor {
  private readonly ring: LatencySampleRing;
  private lastPublish = -Infinity;

  /** `ring`: the main thread's samples (and where the state is published); `opts.sources`: more writers' rings. */
  constructor(ring: LatencySampleRing, opts: BulkGovernorOptions) {
    super({ ...opts, sources: [ring, ...(opts.sources ?? [])] });
    this.ring = ring;
  }

  override share(nowMs: number): number {
    const share = super.share(nowMs);
    if (nowMs - this.lastPublish >= PUBLISH_INTERVAL_MS) {
      this.lastPublish = nowMs;
      this.ring.publish(super.snapshot(nowMs));
    }
    return share;
  }

  /**
   * Runs the controller and publishes every `intervalMs` whether or not a link asks (unref'd
   * timer; it does not count as bulk asking, so inference meanwhile feeds the no-bulk baseline).
   * Returns the stop.
   */
  tickEvery(intervalMs: number = PUBLISH_INTERVAL_MS): () => void {
    const timer = setInterval(() => {
      const now = performance.now();
      this.lastPublish = now;
      this.ring.publish(super.snapshot(now));
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}
