// Process lifecycle of `sluice serve`: graceful drain on SIGTERM/SIGINT, immediate exit on a
// second signal, configuration and certificate reload on SIGHUP. Components register hooks;
// this file owns only the order, the deadlines and the signals.
//
// Drain order: readiness goes false (orchestrators stop routing here) -> optional delay so load
// balancers notice -> "stop-accepting" hooks (close listeners, GOAWAY) -> "in-flight" hooks
// (wait for requests to finish; their signal aborts at the grace deadline, when they hand the
// rest back with a retryable error) -> "flush" hooks (audit log, logs) -> "close" hooks (links,
// servers) -> exit 0. A hook that throws is logged and the drain goes on; the exit code is then 1.
import type { Logger } from 'pino';
import type { SluiceConfig } from '../config/schema.ts';
import { SluiceError } from '../errors.ts';
import type { HealthModel } from '../telemetry/health.ts';
import type { ReloadStats } from '../telemetry/stat-sources.ts';
import { restartRequiredChanges } from './restart-required.ts';

export const DRAIN_PHASES = ['stop-accepting', 'in-flight', 'flush', 'close'] as const;
export type DrainPhase = (typeof DRAIN_PHASES)[number];

export interface DrainContext {
  readonly reason: string;
  /** When in-flight work must be done (ms since the epoch); after it, hand work back. */
  readonly deadline: number;
  /** Aborts at the deadline (in-flight phase) or when the close timeout runs out (later phases). */
  readonly signal: AbortSignal;
}

export type DrainHook = (ctx: DrainContext) => Promise<void> | void;
export type ReloadHook = (next: SluiceConfig, previous: SluiceConfig) => Promise<void> | void;

export interface LifecycleOptions {
  /** Time from the drain signal until in-flight work is handed back. */
  graceMs: number;
  /** Time after readiness goes false before listeners stop accepting (load balancers catch up). */
  delayMs?: number;
  /** Time allowed for the flush and close phases after the grace period. */
  closeTimeoutMs?: number;
  logger: Logger;
  health?: HealthModel;
  /** Re-reads and validates the configuration (SIGHUP); throws a SluiceError when invalid. */
  loadConfig?: () => Promise<SluiceConfig> | SluiceConfig;
  /** The configuration running now (the "previous" of the first reload). */
  config?: SluiceConfig;
  reloadStats?: ReloadStats;
  /** Ends the process; default process.exit. */
  exit?: (code: number) => void;
  /** Last words before an immediate exit (e.g. a synchronous log flush). */
  beforeImmediateExit?: () => void;
}

export type LifecycleState = 'running' | 'draining' | 'stopped';

const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

export class LifecycleError extends SluiceError {
  constructor(message: string) {
    super('SLUICE_ERR_LIFECYCLE', message);
  }
}

interface Registered<H> {
  name: string;
  fn: H;
}

export class Lifecycle {
  private readonly drainHooks = new Map<DrainPhase, Registered<DrainHook>[]>(DRAIN_PHASES.map((p) => [p, []]));
  private readonly reloadHooks: Registered<ReloadHook>[] = [];
  private current: SluiceConfig | undefined;
  private stateValue: LifecycleState = 'running';
  private drainPromise: Promise<number> | undefined;
  private reloading: Promise<boolean> | undefined;
  private reloadAgain = false;
  private readonly installed: Array<[NodeJS.Signals, () => void]> = [];
  private readonly log: Logger;
  private readonly exit: (code: number) => void;

  private readonly opts: LifecycleOptions;

  constructor(opts: LifecycleOptions) {
    this.opts = { ...opts };
    if (!Number.isInteger(opts.graceMs) || opts.graceMs < 0) throw new RangeError('graceMs must be a non-negative integer');
    this.log = opts.logger;
    this.current = opts.config;
    this.exit = opts.exit ?? ((code) => process.exit(code));
  }

  /** Applies new drain timings (a reload); a drain already running keeps the old ones. */
  setTimings(t: { graceMs: number; delayMs?: number; closeTimeoutMs?: number }): void {
    if (!Number.isInteger(t.graceMs) || t.graceMs < 0) throw new RangeError('graceMs must be a non-negative integer');
    this.opts.graceMs = t.graceMs;
    if (t.delayMs !== undefined) this.opts.delayMs = t.delayMs;
    if (t.closeTimeoutMs !== undefined) this.opts.closeTimeoutMs = t.closeTimeoutMs;
  }

  get state(): LifecycleState {
    return this.stateValue;
  }

  get config(): SluiceConfig | undefined {
    return this.current;
  }

  /** Registers work to do in one drain phase; hooks of a phase run concurrently. */
  onDrain(phase: DrainPhase, name: string, fn: DrainHook): () => void {
    const list = this.drainHooks.get(phase)!;
    const entry = { name, fn };
    list.push(entry);
    return () => {
      const i = list.indexOf(entry);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** Registers work to apply a new configuration; hooks run one after another in order. */
  onReload(name: string, fn: ReloadHook): () => void {
    const entry = { name, fn };
    this.reloadHooks.push(entry);
    return () => {
      const i = this.reloadHooks.indexOf(entry);
      if (i >= 0) this.reloadHooks.splice(i, 1);
    };
  }

  /** SIGTERM and SIGINT drain (a second one exits at once); SIGHUP reloads. */
  installSignalHandlers(): void {
    if (this.installed.length > 0) return;
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      const h = (): void => this.onStopSignal(sig);
      process.on(sig, h);
      this.installed.push([sig, h]);
    }
    const hup = (): void => {
      void this.reload('SIGHUP');
    };
    process.on('SIGHUP', hup);
    this.installed.push(['SIGHUP', hup]);
  }

  removeSignalHandlers(): void {
    for (const [sig, h] of this.installed) process.off(sig, h);
    this.installed.length = 0;
  }

  private onStopSignal(sig: NodeJS.Signals): void {
    if (this.stateValue === 'running') {
      void this.drain(sig).then((code) => this.finish(code));
      return;
    }
    const code = 128 + (SIGNAL_NUMBERS[sig] ?? 15);
    this.log.warn({ signal: sig }, 'second stop signal during drain: exiting now');
    this.opts.beforeImmediateExit?.();
    this.stateValue = 'stopped';
    this.exit(code);
  }

  private finish(code: number): void {
    this.removeSignalHandlers();
    this.exit(code);
  }

  /**
   * Runs the drain once (later calls return the same promise). Resolves with the exit code:
   * 0 when every hook succeeded in time, 1 otherwise. Does not exit; signal handlers do.
   */
  drain(reason: string): Promise<number> {
    this.drainPromise ??= this.runDrain(reason);
    return this.drainPromise;
  }

  private async runDrain(reason: string): Promise<number> {
    this.stateValue = 'draining';
    const started = Date.now();
    const graceMs = this.opts.graceMs;
    const closeTimeoutMs = this.opts.closeTimeoutMs ?? 5_000;
    const deadline = started + graceMs;
    this.log.info({ reason, graceMs, delayMs: this.opts.delayMs ?? 0 }, 'draining: readiness off, finishing in-flight work');
    this.opts.health?.startDraining();

    // Backstop: if hooks hang past grace + close timeout, leave anyway.
    const hard = setTimeout(() => {
      this.log.error({ reason, afterMs: graceMs + closeTimeoutMs }, 'drain did not finish in time: exiting');
      this.opts.beforeImmediateExit?.();
      this.stateValue = 'stopped';
      this.exit(1);
    }, graceMs + closeTimeoutMs + 1_000);
    hard.unref();

    let failed = false;
    const graceSignal = AbortSignal.timeout(Math.max(0, graceMs));
    const delayMs = Math.min(this.opts.delayMs ?? 0, graceMs);
    if (delayMs > 0) await sleep(delayMs);
    failed = (await this.runPhase('stop-accepting', { reason, deadline, signal: graceSignal })) || failed;
    failed = (await this.runPhase('in-flight', { reason, deadline, signal: graceSignal })) || failed;
    const closeDeadline = Math.max(Date.now(), deadline) + closeTimeoutMs;
    const closeSignal = AbortSignal.timeout(closeDeadline - Date.now());
    failed = (await this.runPhase('flush', { reason, deadline: closeDeadline, signal: closeSignal })) || failed;
    failed = (await this.runPhase('close', { reason, deadline: closeDeadline, signal: closeSignal })) || failed;
    clearTimeout(hard);
    this.stateValue = 'stopped';
    this.log.info({ reason, tookMs: Date.now() - started, clean: !failed }, 'drained');
    return failed ? 1 : 0;
  }

  /** Runs one phase's hooks concurrently; true when any failed or overran the phase deadline. */
  private async runPhase(phase: DrainPhase, ctx: DrainContext): Promise<boolean> {
    const hooks = [...this.drainHooks.get(phase)!];
    if (hooks.length === 0) return false;
    // A hook that ignores its signal must not stall the later phases: wait at most until the
    // phase deadline (plus a moment for hand-back work triggered by the abort).
    const overrun = Math.max(0, ctx.deadline - Date.now()) + 1_000;
    const results = await Promise.all(
      hooks.map(async (h): Promise<boolean> => {
        const t0 = Date.now();
        let timer: NodeJS.Timeout | undefined;
        try {
          const outcome = await Promise.race([
            Promise.resolve().then(() => h.fn(ctx)).then(() => 'done' as const),
            new Promise<'overran'>((resolve) => {
              timer = setTimeout(() => resolve('overran'), overrun);
              timer.unref();
            }),
          ]);
          if (outcome === 'overran') {
            this.log.error({ phase, hook: h.name }, 'drain hook overran its deadline');
            return true;
          }
          this.log.debug({ phase, hook: h.name, tookMs: Date.now() - t0 }, 'drain hook done');
          return false;
        } catch (err) {
          this.log.error({ phase, hook: h.name, err }, 'drain hook failed');
          return true;
        } finally {
          if (timer !== undefined) clearTimeout(timer);
        }
      }),
    );
    return results.some(Boolean);
  }

  /**
   * Re-reads the configuration and applies it through the reload hooks, in order. An invalid
   * file changes nothing. Concurrent requests coalesce into one more run after the current one.
   * Resolves true when the new configuration was applied by every hook.
   */
  reload(trigger = 'reload'): Promise<boolean> {
    if (this.stateValue !== 'running') {
      this.log.warn({ trigger }, 'reload ignored: draining');
      return Promise.resolve(false);
    }
    if (this.reloading !== undefined) {
      this.reloadAgain = true;
      return this.reloading;
    }
    this.reloading = this.runReload(trigger).finally(() => {
      this.reloading = undefined;
      if (this.reloadAgain) {
        this.reloadAgain = false;
        void this.reload(trigger);
      }
    });
    return this.reloading;
  }

  private async runReload(trigger: string): Promise<boolean> {
    const stats = this.opts.reloadStats;
    if (this.opts.loadConfig === undefined) {
      this.log.warn({ trigger }, 'reload requested but no configuration source is set');
      return false;
    }
    let next: SluiceConfig;
    try {
      next = await this.opts.loadConfig();
    } catch (err) {
      if (stats) stats.failure++;
      this.log.error({ trigger, err: errSummary(err) }, 'reload rejected: configuration invalid; keeping the running one');
      return false;
    }
    const previous = this.current ?? next;
    const needRestart = restartRequiredChanges(previous, next);
    if (needRestart.length > 0) {
      this.log.warn({ trigger, fields: needRestart }, 'reload cannot change these without a restart; keeping the running values');
    }
    let ok = true;
    for (const h of this.reloadHooks) {
      try {
        await h.fn(next, previous);
      } catch (err) {
        ok = false;
        this.log.error({ trigger, hook: h.name, err: errSummary(err) }, 'reload hook failed');
      }
    }
    this.current = next;
    if (stats) {
      if (ok) {
        stats.success++;
        stats.lastSuccessSeconds = Math.floor(Date.now() / 1000);
      } else {
        stats.failure++;
      }
    }
    this.log.info({ trigger, ok }, ok ? 'configuration reloaded' : 'configuration reloaded with errors');
    return ok;
  }
}

function errSummary(err: unknown): { message: string; code?: string } {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? { message: err.message, code } : { message: err.message };
  }
  return { message: String(err) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
