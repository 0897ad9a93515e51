// security.threats on the engine's gRPC ingress. Two halves:
//  - the detectors' input: the engine's sampled tensor tap (native/engine/tensor_tap.h) writes
//    the numeric inputs of a sample of fast-path ModelInfer calls into a ring, drained here on
//    each 'tensor-tap' event into ThreatMonitor.tap (the queue and detectors the TypeScript
//    ingress's tap feeds: threat-ingress.ts threatTap). The calls never wait for this; a full
//    ring drops the sample (sluice_threat_tap_dropped_total, as a full detector queue does).
//  - the verdicts' effect: a tenant the detectors flag enters a stricter profile (audit every
//    call, throttle or block). That acts on each call synchronously, which a tap cannot, so the
//    profiled tenant's calls go to the TypeScript slow path for the profile's duration: the
//    policy table is republished when a profile starts and when it ends (a timer at its end).
//    The call that tripped the detector has already been answered, as on the TypeScript path.
import type { Logger } from '../telemetry/logger.ts';
import type { TenantNames } from '../security/threats/threat-ingress.ts';
import type { ThreatMonitor } from '../security/threats/threat-monitor.ts';
import { EngineTensorTapRing } from './engine-tensor-tap.ts';
import type { NativeEngine } from './native-engine.ts';

export interface EngineThreatsOptions {
  monitor: ThreatMonitor;
  names: TenantNames;
  /** security.threats.sampleRate */
  sampleRate: number;
  /** security.threats.engineTapBytes: the ring's record space. */
  ringBytes: number;
  /** Samples lost because the ring was full (added to sluice_threat_tap_dropped_total). */
  onDropped?: (n: number) => void;
}

export class EngineThreatTap {
  readonly ring: EngineTensorTapRing;
  readonly #engine: NativeEngine;
  readonly #unsubscribe: () => void;
  readonly #onTap: () => void;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  /** `republish` recompiles the policy table (its slow-path tenants include the profiled ones). */
  constructor(engine: NativeEngine, o: EngineThreatsOptions, republish: () => void, logger: Logger) {
    this.#engine = engine;
    this.ring = new EngineTensorTapRing(o.ringBytes);
    const { monitor, names } = o;
    this.#onTap = () => {
      this.ring.drain((c) => void monitor.tap({ tenant: names(c.tenant), model: c.model, requestId: c.requestId, inputs: c.inputs }));
      const dropped = this.ring.takeDropped();
      if (dropped > 0) o.onDropped?.(dropped);
    };
    engine.on('tensor-tap', this.#onTap);
    engine.feedTensorTap(this.ring.view, o.sampleRate);
    const changed = (): void => {
      if (this.#closed) return;
      try {
        republish();
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'engine ingress: policy table not republished after a threat profile change (the previous one stays in force)');
      }
      this.#armExpiry(monitor);
    };
    this.#unsubscribe = monitor.onProfilesChanged(changed);
  }

  /** A timer at the next profile's end: profiledTenants() ends it (audited) and the table follows. */
  #armExpiry(monitor: ThreatMonitor): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const next = monitor.nextProfileEnd();
    if (next === undefined || this.#closed) return;
    // Timers cap at 2^31-1 ms; profiles last at most 7 days, so re-arm in steps.
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      monitor.profiledTenants(); // ends the expired ones; their change republishes
      this.#armExpiry(monitor);
    }, Math.min(Math.max(0, next - Date.now()) + 5, 2 ** 31 - 1));
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    this.#unsubscribe();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#engine.off('tensor-tap', this.#onTap);
  }
}
