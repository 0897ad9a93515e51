// Outlier ejection of failing upstreams (after Envoy's consecutive-5xx detector): an upstream
// that fails `consecutiveFailures` times in a row leaves the pick set for an ejection time that
// doubles with each repeated ejection (base * 2^(n-1), capped), and returns on its own when the
// time is up. At most `maxEjectedFraction` of the upstreams are out at once (at least one may
// be), so a shared failure (the model itself is down) does not empty the pool.
export interface OutlierDetectorOptions {
  consecutiveFailures: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
  maxEjectedFraction: number;
}

export const defaultOutlierOptions: OutlierDetectorOptions = {
  consecutiveFailures: 5,
  baseEjectionMs: 1000,
  maxEjectionMs: 30_000,
  maxEjectedFraction: 0.5,
};

interface MemberState {
  consecutive: number;
  ejectedUntil: number;
  /** Ejections in the current streak; decays after a healthy stretch of maxEjectionMs. */
  ejections: number;
  lastEjectionEnd: number;
}

export type FailureOutcome = 'counted' | 'ejected' | 'cap-reached';

export class OutlierDetector {
  private readonly members = new Map<string, MemberState>();

  constructor(readonly opts: OutlierDetectorOptions = defaultOutlierOptions) {
    if (!(Number.isInteger(opts.consecutiveFailures) && opts.consecutiveFailures >= 1)) {
      throw new RangeError(`consecutiveFailures must be an integer >= 1, got ${opts.consecutiveFailures}`);
    }
    if (!(opts.baseEjectionMs > 0 && opts.maxEjectionMs >= opts.baseEjectionMs)) {
      throw new RangeError(`need 0 < baseEjectionMs <= maxEjectionMs, got ${opts.baseEjectionMs}, ${opts.maxEjectionMs}`);
    }
    if (!(opts.maxEjectedFraction >= 0 && opts.maxEjectedFraction <= 1)) {
      throw new RangeError(`maxEjectedFraction must be in [0, 1], got ${opts.maxEjectedFraction}`);
    }
  }

  add(key: string): void {
    if (!this.members.has(key)) this.members.set(key, { consecutive: 0, ejectedUntil: -Infinity, ejections: 0, lastEjectionEnd: -Infinity });
  }

  remove(key: string): void {
    this.members.delete(key);
  }

  isEjected(key: string, nowMs: number): boolean {
    const m = this.members.get(key);
    return m !== undefined && m.ejectedUntil > nowMs;
  }

  /** Milliseconds until an ejected upstream returns (0 when it is in the pool). */
  ejectedForMs(key: string, nowMs: number): number {
    const m = this.members.get(key);
    return m === undefined ? 0 : Math.max(0, m.ejectedUntil - nowMs);
  }

  ejectedCount(nowMs: number): number {
    let n = 0;
    for (const m of this.members.values()) if (m.ejectedUntil > nowMs) n++;
    return n;
  }

  onSuccess(key: string): void {
    const m = this.members.get(key);
    if (m !== undefined) m.consecutive = 0;
  }

  onFailure(key: string, nowMs: number): FailureOutcome {
    const m = this.members.get(key);
    if (m === undefined) return 'counted';
    if (m.ejectedUntil > nowMs) return 'counted'; // a late answer from before the ejection
    m.consecutive++;
    if (m.consecutive < this.opts.consecutiveFailures) return 'counted';
    const cap = Math.max(1, Math.floor(this.members.size * this.opts.maxEjectedFraction));
    if (this.opts.maxEjectedFraction === 0 || this.ejectedCount(nowMs) >= cap) return 'cap-reached';
    if (m.ejectedUntil !== -Infinity && nowMs - m.lastEjectionEnd > this.opts.maxEjectionMs) m.ejections = 0;
    m.ejections++;
    const duration = Math.min(this.opts.maxEjectionMs, this.opts.baseEjectionMs * 2 ** (m.ejections - 1));
    m.ejectedUntil = nowMs + duration;
    m.lastEjectionEnd = m.ejectedUntil;
    m.consecutive = 0;
    return 'ejected';
  }
}
