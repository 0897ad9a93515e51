// The threat detectors behind one node: per (tenant, model) PRADA, coverage and volume state,
// per (model, input) adversarial baselines, per tensor name poisoning history; the per-tenant
// action (observe | throttle | block) and the stricter profile a flagged tenant moves to for a
// while. Fed by the inference tap and the training receiver, it never sits on a call's critical
// path: `tap()` only queues a copy (and drops when the queue is full); detection runs later on
// the event loop in small slices. Everything is bounded: detector maps are LRU-capped.
import type { SecurityEventSink } from '../events.ts';
import { AdversarialDetector } from './adversarial-detector.ts';
import { CoverageSketch } from './coverage-sketch.ts';
import { PoisoningDetector, type PoisoningVerdict } from './poisoning-detector.ts';
import { PradaDetector } from './prada.ts';
import type { ThreatAction, ThreatsConfig } from './threat-config.ts';

export type ThreatSignal = 'extraction' | 'adversarial' | 'poisoning';

/** One numeric input tensor of a tapped call, as float values (copied: the call has moved on). */
export interface TappedTensor {
  name: string;
  shape: readonly number[];
  values: Float32Array | Float64Array;
}

export interface TappedCall {
  tenant: string;
  model: string;
  requestId: string;
  inputs: readonly TappedTensor[];
}

export interface TenantProfile {
  action: ThreatAction;
  /** Date.now() when the stricter profile ends. */
  until: number;
  signal: ThreatSignal;
}

export interface ThreatCounters {
  /** Called for every signal raised (metrics). */
  onSignal?(signal: ThreatSignal, tenant: string): void;
  /** Called when the tap drops a call (queue full). */
  onDropped?(): void;
}

class Lru<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly cap: number) {}
  get(k: K, make: () => V): V {
    let v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
    } else {
      v = make();
      if (this.map.size >= this.cap) this.map.delete(this.map.keys().next().value!);
    }
    this.map.set(k, v);
    return v;
  }
  get size(): number {
    return this.map.size;
  }
}

interface ClientState {
  prada: PradaDetector;
  coverage: CoverageSketch;
  /** Query timestamps of the current minute window (volume signal). */
  windowStart: number;
  windowCount: number;
  flagged: boolean;
}

export class ThreatMonitor {
  private readonly cfg: ThreatsConfig;
  private readonly events: SecurityEventSink;
  private readonly counters: ThreatCounters;
  private readonly clients = new Lru<string, ClientState>(4096);
  private readonly baselines = new Lru<string, AdversarialDetector>(1024);
  readonly poisoning: PoisoningDetector;
  private readonly profiles = new Map<string, TenantProfile>();
  private readonly queue: TappedCall[] = [];
  private draining = false;
  private readonly now: () => number;
  private sampleAcc = 0;
  private readonly lastAdversarialEvent = new Map<string, number>();
  private readonly profileListeners = new Set<() => void>();

  constructor(cfg: ThreatsConfig, events: SecurityEventSink, counters: ThreatCounters = {}, now: () => number = Date.now) {
    this.cfg = cfg;
    this.events = events;
    this.counters = counters;
    this.now = now;
    this.poisoning = new PoisoningDetector({
      normJump: cfg.poisoning.normJump,
      ksThreshold: cfg.poisoning.ksThreshold,
      digestMismatches: cfg.poisoning.digestMismatches,
    });
  }

  get enabled(): boolean {
    return this.cfg.enabled;
  }

  /** The action configured for a tenant. */
  actionFor(tenant: string): ThreatAction {
    return this.cfg.tenants.find((t) => t.tenant === tenant)?.action ?? this.cfg.defaultAction;
  }

  /** The stricter profile a tenant is in now, if any (expired profiles end here, audited). */
  profileOf(tenant: string): TenantProfile | undefined {
    const p = this.profiles.get(tenant);
    if (p === undefined) return undefined;
    if (this.now() < p.until) return p;
    this.profiles.delete(tenant);
    this.profilesChanged();
    this.events.emit({ type: 'threat.profile_exited', tenant, requestId: null, actor: 'threat-monitor', outcome: 'success', detail: { action: p.action, signal: p.signal } });
    return undefined;
  }

  /**
   * Tenants in a stricter profile now (ended profiles end here, audited). The native engine
   * sends these tenants' calls to the TypeScript path, where the profile hook acts on each.
   */
  profiledTenants(): string[] {
    return [...this.profiles.keys()].filter((t) => this.profileOf(t) !== undefined);
  }

  /** Date.now() when the next profile ends (undefined: none). */
  nextProfileEnd(): number | undefined {
    let next: number | undefined;
    for (const p of this.profiles.values()) if (next === undefined || p.until < next) next = p.until;
    return next;
  }

  /** Calls `fn` whenever a tenant enters or leaves a profile; returns the unsubscribe. */
  onProfilesChanged(fn: () => void): () => void {
    this.profileListeners.add(fn);
    return () => this.profileListeners.delete(fn);
  }

  private profilesChanged(): void {
    for (const fn of this.profileListeners) fn();
  }

  /** Whether this call should be tapped (deterministic sampling at `sampleRate`). */
  shouldSample(): boolean {
    if (!this.cfg.enabled) return false;
    this.sampleAcc += this.cfg.sampleRate;
    if (this.sampleAcc >= 1) {
      this.sampleAcc -= 1;
      return true;
    }
    return false;
  }

  /** Queues a tapped call for the detectors; never blocks, drops when the queue is full. */
  tap(call: TappedCall): boolean {
    if (this.queue.length >= this.cfg.maxQueued) {
      this.counters.onDropped?.();
      return false;
    }
    this.queue.push(call);
    if (!this.draining) {
      this.draining = true;
      setImmediate(() => this.drain());
    }
    return true;
  }

  /** Calls waiting for the detectors. */
  get queued(): number {
    return this.queue.length;
  }

  /** Resolves when the queue is empty (tests and the bench). */
  async idle(): Promise<void> {
    while (this.queue.length > 0 || this.draining) await new Promise((r) => setImmediate(r));
  }

  private drain(): void {
    // A slice of work per turn, so a burst of taps never holds the loop for long.
    const until = performance.now() + 2;
    while (this.queue.length > 0 && performance.now() < until) this.inspect(this.queue.shift()!);
    if (this.queue.length > 0) setImmediate(() => this.drain());
    else this.draining = false;
  }

  /** Runs the inference detectors on one call now (the tap's worker; public for the bench). */
  inspect(call: TappedCall): void {
    if (this.cfg.extraction.enabled) this.inspectExtraction(call);
    if (this.cfg.adversarial.enabled) this.inspectAdversarial(call);
  }

  private inspectExtraction(call: TappedCall): void {
    const input = call.inputs[0];
    if (input === undefined) return;
    const dim = input.shape.length >= 2 ? input.shape[input.shape.length - 1]! : input.values.length;
    if (dim <= 0 || input.values.length % dim !== 0) return;
    const key = `${call.tenant}\0${call.model}\0${dim}`;
    const e = this.cfg.extraction;
    const st = this.clients.get(key, () => ({
      prada: new PradaDetector(dim, { wThreshold: e.wThreshold, minQueries: e.minQueries, window: e.window, maxGrowingSet: e.maxGrowingSet }),
      coverage: new CoverageSketch(dim),
      windowStart: this.now(),
      windowCount: 0,
      flagged: false,
    }));
    for (let row = 0; row + dim <= input.values.length; row += dim) {
      const q = input.values.subarray(row, row + dim);
      const v = st.prada.observe(q);
      st.coverage.add(q);
      const now = this.now();
      if (now - st.windowStart >= 60_000) {
        st.windowStart = now;
        st.windowCount = 0;
      }
      st.windowCount++;
      const reasons: string[] = [];
      if (v.flagged) reasons.push('distance_distribution');
      if (st.windowCount > e.maxQueriesPerMinute) reasons.push('query_volume');
      if (st.coverage.queries >= 200 && st.coverage.coveragePer1000 > e.maxCoveragePer1000) reasons.push('input_coverage');
      if (reasons.length > 0 && !st.flagged) {
        st.flagged = true;
        this.raise('extraction', call.tenant, call.requestId, 'threat.extraction_suspected', {
          model: call.model,
          reasons,
          queries: v.queries,
          w: v.w,
          queriesPerMinute: st.windowCount,
          coveragePer1000: Math.round(st.coverage.coveragePer1000),
        });
      } else if (reasons.length === 0 && st.flagged && this.profiles.get(call.tenant) === undefined) {
        st.flagged = false; // profile over and behaviour normal again: may flag anew
      }
    }
  }

  private inspectAdversarial(call: TappedCall): void {
    const a = this.cfg.adversarial;
    for (const input of call.inputs) {
      const d = this.baselines.get(`${call.model}\0${input.name}`, () => new AdversarialDetector({ warmup: a.warmup, threshold: a.threshold, saturation: a.saturation }));
      const v = d.observe(input.values, input.shape);
      if (!v.flagged) continue;
      // One event per tenant and model per second at most; the counter counts every input.
      const key = `${call.tenant}\0${call.model}`;
      const now = this.now();
      const last = this.lastAdversarialEvent.get(key) ?? 0;
      if (now - last < 1000) {
        this.counters.onSignal?.('adversarial', call.tenant);
        continue;
      }
      if (this.lastAdversarialEvent.size > 4096) this.lastAdversarialEvent.clear();
      this.lastAdversarialEvent.set(key, now);
      this.raise('adversarial', call.tenant, call.requestId, 'threat.adversarial_input', {
        model: call.model,
        input: input.name,
        score: Number.isFinite(v.score) ? Number(v.score!.toFixed(2)) : 'non-finite',
        feature: v.feature ?? 'non_finite',
      });
    }
  }

  /**
   * Checks a received training tensor (values decoded by the caller). Returns the verdict; a
   * flagged one raises `threat.poisoning_suspected` against the sender's tenant.
   */
  inspectTrainingTensor(name: string, sender: string, tenant: string, values: ArrayLike<number>, shape: readonly number[], transferId: string): PoisoningVerdict {
    const allowed = this.cfg.poisoning.allowedSenders[name];
    const v = this.poisoning.observe(name, sender, values, shape);
    if (allowed !== undefined && !allowed.includes(sender) && !v.signals.includes('unexpected_sender')) v.signals.push('unexpected_sender');
    v.flagged = v.signals.length > 0;
    if (v.flagged) {
      this.raise('poisoning', tenant, null, 'threat.poisoning_suspected', {
        tensor: name,
        transfer: transferId,
        signals: v.signals,
        normRatio: v.detail.normRatio,
        ks: v.detail.ks,
        nonFinite: v.detail.nonFinite,
        sender,
        quarantined: this.cfg.poisoning.quarantine,
      });
    }
    return v;
  }

  private raise(signal: ThreatSignal, tenant: string, requestId: string | null, type: string, detail: Record<string, unknown>): void {
    this.counters.onSignal?.(signal, tenant);
    const action = this.actionFor(tenant);
    this.events.emit({ type, tenant, requestId, actor: 'threat-monitor', outcome: 'failure', reason: signal, detail: { ...detail, action } });
    if (this.profileOf(tenant) === undefined) {
      const until = this.now() + this.cfg.profile.durationSeconds * 1000;
      this.profiles.set(tenant, { action, until, signal });
      this.profilesChanged();
      this.events.emit({
        type: 'threat.profile_entered',
        tenant,
        requestId,
        actor: 'threat-monitor',
        outcome: 'success',
        detail: { action, signal, until: new Date(until).toISOString(), rateLimitPerSecond: action === 'throttle' ? this.cfg.profile.rateLimitPerSecond : undefined },
      });
    }
  }
}
