// Mean and variance of a stream of numbers (Welford's update: stable, O(1) memory).
export class RunningStats {
  private n = 0;
  private m = 0;
  private s = 0;

  push(x: number): void {
    if (!Number.isFinite(x)) return;
    this.n++;
    const d = x - this.m;
    this.m += d / this.n;
    this.s += d * (x - this.m);
  }

  get count(): number {
    return this.n;
  }

  get mean(): number {
    return this.m;
  }

  get variance(): number {
    return this.n > 1 ? this.s / (this.n - 1) : 0;
  }

  get std(): number {
    return Math.sqrt(this.variance);
  }
}
