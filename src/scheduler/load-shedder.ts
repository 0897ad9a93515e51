// Load shedding for inference: admit a request only if the work queued ahead of it is expected
// to be done before the request's deadline. The queue delay estimate is (requests in flight / parallelism)
// x EWMA service time; a request that would wait past its remaining deadline (or past the
// configured queue-delay cap) is refused at once (the ingress answers RESOURCE_EXHAUSTED / 429
// with a retry hint) instead of timing out late after occupying a slot.
export interface LoadShedderOptions {
  /** Requests served concurrently by the upstream pool (sum of upstream concurrency). */
  parallelism: number;
  /** Longest queue delay accepted whatever the deadline, milliseconds. */
  maxQueueDelayMs: number;
  /** Hard cap on requests in flight through this node. */
  maxInFlight: number;
  /** Weight of a new service-time sample. */
  alpha?: number;
  /** Service time assumed before the first sample, milliseconds. */
  initialServiceMs?: number;
}

/** Why a request was shed (a metrics label): too many in flight, the queue cap, or its deadline. */
export type ShedCause = 'in_flight' | 'queue_delay' | 'deadline';
export const SHED_CAUSES: readonly ShedCause[] = ['in_flight', 'queue_delay', 'deadline'];

export type ShedDecision = { admit: true } | { admit: false; cause: ShedCause; reason: string; retryAfterMs: number; queueDelayMs: number };

export class LoadShedder {
  private inFlight = 0;
  private serviceMs: number;
  private readonly alpha: number;
  private shedCount = 0;

  constructor(readonly opts: LoadShedderOptions) {
    if (!(opts.parallelism >= 1)) throw new RangeError(`parallelism must be >= 1, got ${opts.parallelism}`);
    if (!(opts.maxQueueDelayMs > 0)) throw new RangeError(`maxQueueDelayMs must be > 0, got ${opts.maxQueueDelayMs}`);
    if (!(Number.isInteger(opts.maxInFlight) && opts.maxInFlight >= 1)) throw new RangeError(`maxInFlight must be an integer >= 1, got ${opts.maxInFlight}`);
    this.alpha = opts.alpha ?? 0.1;
    this.serviceMs = opts.initialServiceMs ?? 1;
  }

  get outstanding(): number {
    return this.inFlight;
  }

  /** EWMA of the service time of admitted requests, milliseconds. */
  get serviceTimeMs(): number {
    return this.serviceMs;
  }

  get shed(): number {
    return this.shedCount;
  }

  /** Expected wait before a request admitted now would start being served, milliseconds. */
  queueDelayMs(): number {
    const ahead = Math.max(0, this.inFlight + 1 - this.opts.parallelism);
    return (ahead / this.opts.parallelism) * this.serviceMs;
  }

  /** Decides for a request with `remainingMs` left before its deadline; on admit, counts it in flight. */
  admit(remainingMs: number): ShedDecision {
    const delay = this.queueDelayMs();
    const retryAfterMs = Math.max(1, Math.ceil(delay));
    if (this.inFlight >= this.opts.maxInFlight) {
      this.shedCount++;
      return { admit: false, cause: 'in_flight', reason: `${this.inFlight} requests in flight (limit ${this.opts.maxInFlight})`, retryAfterMs, queueDelayMs: delay };
    }
    if (delay > this.opts.maxQueueDelayMs) {
      this.shedCount++;
      return { admit: false, cause: 'queue_delay', reason: `estimated queue delay ${delay.toFixed(1)} ms exceeds the ${this.opts.maxQueueDelayMs} ms cap`, retryAfterMs, queueDelayMs: delay };
    }
    // The queue alone must fit the deadline. Service time is not added: it differs per model,
    // and one slow model must not get a fast model's short-deadline requests shed.
    if (delay > remainingMs) {
      this.shedCount++;
      return {
        admit: false,
        cause: 'deadline',
        reason: `estimated queue delay ${delay.toFixed(1)} ms exceeds the ${Math.max(0, remainingMs).toFixed(1)} ms left before the deadline`,
        retryAfterMs,
        queueDelayMs: delay,
      };
    }
    this.inFlight++;
    return { admit: true };
  }

  /** An admitted request finished after `serviceMs` milliseconds (any outcome). */
  release(serviceMs: number): void {
    if (this.inFlight > 0) this.inFlight--;
    if (serviceMs >= 0 && Number.isFinite(serviceMs)) this.serviceMs += this.alpha * (serviceMs - this.serviceMs);
  }
}
