// Retry budget (after Finagle's RetryBudget): over a sliding window, retries may add at most
// `ratio` of the requests plus a floor of `minPerSec` retries per second, so retries cannot
// multiply load during an outage (the retry storm). Only failures that happened before the
// request reached the model qualify: those are safe to repeat on another upstream.
export interface RetryBudgetOptions {
  /** Retries allowed per request over the window (0.2 = 20% extra load at most). */
  ratio: number;
  /** Retries allowed per second regardless of traffic (lets low-rate clients retry). */
  minPerSec: number;
  /** Window length, milliseconds. */
  windowMs: number;
}

export const defaultRetryBudget: RetryBudgetOptions = { ratio: 0.2, minPerSec: 10, windowMs: 10_000 };

const SLOTS = 10;

export class RetryBudget {
  private readonly slotMs: number;
  private readonly requests = new Float64Array(SLOTS);
  private readonly retries = new Float64Array(SLOTS);
  private readonly epochs = new Float64Array(SLOTS).fill(-Infinity);

  constructor(readonly opts: RetryBudgetOptions = defaultRetryBudget) {
    if (!(opts.ratio >= 0)) throw new RangeError(`ratio must be >= 0, got ${opts.ratio}`);
    if (!(opts.minPerSec >= 0)) throw new RangeError(`minPerSec must be >= 0, got ${opts.minPerSec}`);
    if (!(opts.windowMs > 0)) throw new RangeError(`windowMs must be > 0, got ${opts.windowMs}`);
    this.slotMs = opts.windowMs / SLOTS;
  }

  /** Counts one original request (not a retry). */
  onRequest(nowMs: number): void {
    this.requests[this.slot(nowMs)]! += 1;
  }

  /** Takes one retry from the budget; false when the budget is spent (do not retry). */
  tryRetry(nowMs: number): boolean {
    const s = this.slot(nowMs);
    let req = 0;
    let ret = 0;
    for (let i = 0; i < SLOTS; i++) {
      req += this.requests[i]!;
      ret += this.retries[i]!;
    }
    const allowed = this.opts.ratio * req + (this.opts.minPerSec * this.opts.windowMs) / 1000;
    if (ret + 1 > allowed) return false;
    this.retries[s]! += 1;
    return true;
  }

  private slot(nowMs: number): number {
    const epoch = Math.floor(nowMs / this.slotMs);
    const s = ((epoch % SLOTS) + SLOTS) % SLOTS;
    if (this.epochs[s] !== epoch) {
      for (let i = 0; i < SLOTS; i++) {
        if (this.epochs[i]! <= epoch - SLOTS) {
          this.requests[i] = 0;
          this.retries[i] = 0;
          this.epochs[i] = -Infinity;
        }
      }
      this.requests[s] = 0;
      this.retries[s] = 0;
      this.epochs[s] = epoch;
    }
    return s;
  }
}

/** Where a failed attempt stopped: only failures before the model saw the request are retried. */
export type FailurePhase = 'before-model' | 'at-model';

export interface RetryQuestion {
  /** Attempts made so far (1 after the first failure). */
  attempts: number;
  phase: FailurePhase;
  /** Milliseconds left before the request's deadline. */
  remainingMs: number;
}

export interface RetryPolicyOptions {
  /** Attempts in total, first one included (2 = one retry). */
  maxAttempts: number;
  /** Do not retry with less than this left on the deadline, milliseconds. */
  minRemainingMs: number;
}

export function shouldRetry(q: RetryQuestion, policy: RetryPolicyOptions, budget: RetryBudget, nowMs: number): boolean {
  if (q.phase !== 'before-model') return false;
  if (q.attempts >= policy.maxAttempts) return false;
  if (q.remainingMs < policy.minRemainingMs) return false;
  return budget.tryRetry(nowMs);
}
