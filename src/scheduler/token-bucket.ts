// A token bucket in bytes: paces the bulk class to `rate` bytes per second with at most `burst`
// bytes sent back to back. A rate of Infinity means "unpaced".
export class TokenBucket {
  private tokens: number;
  private last: number;
  private rateBps: number;
  private burstBytes: number;

  constructor(rateBytesPerSec: number, burstBytes: number, nowMs: number) {
    this.rateBps = TokenBucket.checkRate(rateBytesPerSec);
    this.burstBytes = TokenBucket.checkBurst(burstBytes);
    this.tokens = burstBytes;
    this.last = nowMs;
  }

  get rate(): number {
    return this.rateBps;
  }

  get burst(): number {
    return this.burstBytes;
  }

  /** Changes the rate (and burst) keeping the tokens earned so far. */
  configure(rateBytesPerSec: number, burstBytes: number, nowMs: number): void {
    this.refill(nowMs);
    this.rateBps = TokenBucket.checkRate(rateBytesPerSec);
    this.burstBytes = TokenBucket.checkBurst(burstBytes);
    if (this.tokens > this.burstBytes) this.tokens = this.burstBytes;
  }

  /**
   * Tries to spend `bytes`. Returns 0 when spent, else the milliseconds to wait before the
   * bucket holds enough. An item larger than the burst may go once the bucket is full
   * (the balance goes negative) so big items are never stuck.
   */
  take(bytes: number, nowMs: number): number {
    if (this.rateBps === Infinity) return 0;
    this.refill(nowMs);
    const need = Math.min(bytes, this.burstBytes);
    if (this.tokens >= need) {
      this.tokens -= bytes;
      return 0;
    }
    return ((need - this.tokens) / this.rateBps) * 1000;
  }

  private refill(nowMs: number): void {
    const dt = nowMs - this.last;
    this.last = nowMs;
    if (dt > 0 && this.rateBps !== Infinity) this.tokens = Math.min(this.burstBytes, this.tokens + (dt / 1000) * this.rateBps);
    else if (this.rateBps === Infinity) this.tokens = this.burstBytes;
  }

  private static checkRate(r: number): number {
    if (!(r > 0)) throw new RangeError(`rate must be > 0 bytes/s, got ${r}`);
    return r;
  }

  private static checkBurst(b: number): number {
    if (!(b > 0 && Number.isFinite(b))) throw new RangeError(`burst must be a positive finite number of bytes, got ${b}`);
    return b;
  }
}
