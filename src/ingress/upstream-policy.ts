// How the ingress chooses and treats its upstreams (the egress peers of a route): admission
// with load shedding, power-of-two-choices on peak-EWMA latency x outstanding calls, outlier
// ejection of failing peers, and bounded retries from a budget for calls that failed before
// they reached the model. Every answered call's round trip also feeds the bulk governor, which
// is what cuts training bulk when inference latency nears its target.
import type { SchedulingConfig } from '../config/schema.ts';
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';
import type { BulkGovernor } from '../scheduler/bulk-governor.ts';
import { LoadShedder, type ShedCause } from '../scheduler/load-shedder.ts';
import { P2cBalancer, type UpstreamLease } from '../scheduler/p2c-balancer.ts';
import { RetryBudget, shouldRetry, type FailurePhase } from '../scheduler/retry-budget.ts';

export interface UpstreamPolicyOptions {
  peers: readonly string[];
  scheduling: SchedulingConfig;
  governor?: BulkGovernor;
  random?: () => number;
}

/** What a failed attempt says about its upstream and whether it may be retried elsewhere. */
export interface AttemptFailure {
  /** The upstream itself failed (counts toward ejection) vs. the request or caller did. */
  upstreamFault: boolean;
  phase: FailurePhase;
}

export class UpstreamPolicy {
  readonly balancer: P2cBalancer<string>;
  readonly budget: RetryBudget;
  readonly shedder: LoadShedder;
  private readonly governor: BulkGovernor | undefined;
  private readonly cfg: SchedulingConfig;
  retries = 0;
  /** Failed attempts not retried (no budget, no time, attempts used up, or failed at the model). */
  retriesDenied = 0;
  /** Requests shed at admission, by cause (counters for metrics). */
  readonly shed: Record<ShedCause, number> = { in_flight: 0, queue_delay: 0, deadline: 0 };

  constructor(opts: UpstreamPolicyOptions) {
    const cfg = opts.scheduling;
    this.cfg = cfg;
    this.governor = opts.governor;
    this.balancer = new P2cBalancer<string>({
      decayMs: cfg.upstreams.decayMs,
      defaultRttMs: 1,
      outlier: {
        consecutiveFailures: cfg.upstreams.consecutiveFailures,
        baseEjectionMs: cfg.upstreams.baseEjectionMs,
        maxEjectionMs: Math.max(cfg.upstreams.maxEjectionMs, cfg.upstreams.baseEjectionMs),
        maxEjectedFraction: cfg.upstreams.maxEjectedFraction,
      },
      ...(opts.random ? { random: opts.random } : {}),
    });
    const now = performance.now();
    for (const p of opts.peers) this.balancer.add(p, p, now);
    this.budget = new RetryBudget({ ratio: cfg.retries.budgetRatio, minPerSec: cfg.retries.minPerSec, windowMs: 10_000 });
    this.shedder = new LoadShedder({ parallelism: cfg.shedding.parallelism, maxQueueDelayMs: cfg.shedding.maxQueueDelayMs, maxInFlight: cfg.shedding.maxInFlight });
  }

  /** Admits a request with `remainingMs` before its deadline, or throws OVERLOADED (429 / RESOURCE_EXHAUSTED). */
  admit(remainingMs: number): void {
    const d = this.shedder.admit(remainingMs);
    if (!d.admit) {
      this.shed[d.cause]++;
      throw new InferenceError(InferenceErrorCode.OVERLOADED, `request shed: ${d.reason}; retry in about ${d.retryAfterMs} ms`);
    }
    this.budget.onRequest(performance.now());
  }

  /** The admitted request is over (any outcome) after `elapsedMs`. */
  release(elapsedMs: number, answered: boolean): void {
    this.shedder.release(elapsedMs);
    if (answered) this.governor?.recordInference(elapsedMs, performance.now());
  }

  /** Picks an upstream among `allowed` ones, preferring those not `tried`. */
  pick(tried: ReadonlySet<string>, allowed: (name: string) => boolean): UpstreamLease<string> | undefined {
    return this.balancer.pick(performance.now(), tried, allowed);
  }

  /** Whether a failed attempt is retried (attempts made so far, time left). */
  retry(failure: AttemptFailure, attempts: number, remainingMs: number): boolean {
    const ok = shouldRetry({ attempts, phase: failure.phase, remainingMs }, { maxAttempts: this.cfg.retries.maxAttempts, minRemainingMs: this.cfg.retries.minRemainingMs }, this.budget, performance.now());
    if (ok) this.retries++;
    else this.retriesDenied++;
    return ok;
  }
}
