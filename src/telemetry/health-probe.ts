// Polls a component whose state cannot be pushed (e.g. an upstream model server's ServerReady)
// and reports it to its health handle, with thresholds so one slow answer does not flap readiness.
import type { HealthHandle } from './health.ts';

export interface ProbeOptions {
  intervalMs?: number;
  /** A check that takes longer than this counts as a failure. */
  timeoutMs?: number;
  /** Consecutive failures before reporting down (the first result after start counts at once). */
  failureThreshold?: number;
  /** Consecutive successes before reporting up again. */
  successThreshold?: number;
}

/** Resolves when healthy (optionally with a note); rejects or resolves false when not. */
export type ProbeCheck = (signal: AbortSignal) => Promise<boolean | string | void>;

export class HealthProbe {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;
  private failures = 0;
  private successes = 0;
  private reported: boolean | undefined;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly failureThreshold: number;
  private readonly successThreshold: number;
  private inflight: AbortController | undefined;

  constructor(
    private readonly handle: HealthHandle,
    private readonly check: ProbeCheck,
    opts: ProbeOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 2000;
    this.timeoutMs = opts.timeoutMs ?? Math.min(1000, this.intervalMs);
    this.failureThreshold = opts.failureThreshold ?? 2;
    this.successThreshold = opts.successThreshold ?? 1;
    if (this.intervalMs <= 0 || this.timeoutMs <= 0) throw new RangeError('intervalMs and timeoutMs must be positive');
  }

  /** Runs the first check now (or after intervalMs with immediate: false), then every intervalMs. */
  start(opts: { immediate?: boolean } = {}): this {
    this.stopped = false;
    if (opts.immediate === false) {
      this.timer = setTimeout(() => void this.tick(), this.intervalMs);
      this.timer.unref();
    } else {
      void this.tick();
    }
    return this;
  }

  /** Runs one check now and reports its outcome. */
  async runOnce(): Promise<boolean> {
    if (this.running) return this.reported ?? false;
    this.running = true;
    const ac = new AbortController();
    this.inflight = ac;
    const timer = setTimeout(() => ac.abort(new Error(`check timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
    let ok = false;
    let detail = '';
    try {
      const result = await Promise.race([
        this.check(ac.signal),
        new Promise<never>((_, reject) => ac.signal.addEventListener('abort', () => reject(ac.signal.reason as Error), { once: true })),
      ]);
      ok = result !== false;
      detail = typeof result === 'string' ? result : ok ? '' : 'check failed';
    } catch (err) {
      detail = err instanceof Error ? err.message : String(err);
    } finally {
      clearTimeout(timer);
      this.inflight = undefined;
      this.running = false;
    }
    if (this.stopped) return ok;
    this.apply(ok, detail);
    return ok;
  }

  private apply(ok: boolean, detail: string): void {
    if (ok) {
      this.failures = 0;
      this.successes++;
      if (this.reported !== true && (this.reported === undefined || this.successes >= this.successThreshold)) {
        this.reported = true;
        this.handle.up(detail);
      }
    } else {
      this.successes = 0;
      this.failures++;
      if (this.reported === undefined || (this.reported && this.failures >= this.failureThreshold)) {
        this.reported = false;
        this.handle.down(detail);
      } else if (!this.reported) {
        this.handle.down(detail); // refresh the reason
      }
    }
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    await this.runOnce();
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.inflight?.abort(new Error('probe stopped'));
  }
}
