// Peak-EWMA latency (as in Finagle and linkerd): a sample above the estimate replaces it at
// once (react to a slowdown immediately), a sample below decays toward it with time constant
// `decayMs` (forget a slowdown gradually). Reading the cost also decays toward zero with idle
// time, so an upstream that was slow once gets probed again instead of being shunned forever.
export class PeakEwma {
  private value: number;
  private stamp: number;

  constructor(
    private readonly decayMs: number,
    initialMs: number,
    nowMs: number,
  ) {
    if (!(decayMs > 0)) throw new RangeError(`decayMs must be > 0, got ${decayMs}`);
    this.value = initialMs;
    this.stamp = nowMs;
  }

  /** Records a round-trip time (milliseconds). */
  observe(rttMs: number, nowMs: number): void {
    if (!(rttMs >= 0)) return;
    if (rttMs > this.value) {
      this.value = rttMs;
    } else {
      const w = Math.exp(-Math.max(0, nowMs - this.stamp) / this.decayMs);
      this.value = this.value * w + rttMs * (1 - w);
    }
    this.stamp = nowMs;
  }

  /** Current estimate (milliseconds), decayed toward 0 by the time since the last sample. */
  get(nowMs: number): number {
    const idle = Math.max(0, nowMs - this.stamp);
    return idle === 0 ? this.value : this.value * Math.exp(-idle / this.decayMs);
  }
}
