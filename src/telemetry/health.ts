// The readiness model. Components (upstream model servers, segment listeners, peer links, client
// listeners) register and report up/down as their state changes; the node is ready only once
// start-up has finished, it is not draining, and every registered component is up. Readers: the
// HTTP health endpoints (/v2/health/ready), gRPC grpc.health.v1, the metrics server, and the
// lifecycle manager (which flips it to draining on SIGTERM).
import { EventEmitter } from 'node:events';

export type ComponentKind = 'upstream' | 'segment' | 'peer' | 'listener' | 'audit' | 'other';

export interface ComponentStatus {
  readonly name: string;
  readonly kind: ComponentKind;
  readonly up: boolean;
  /** Why it is down (or a short note when up). */
  readonly detail: string;
  /** When it last changed state (ms since the epoch). */
  readonly since: number;
  /** gRPC service names this component gates; null = every service (the node as a whole). */
  readonly services: readonly string[] | null;
  /** False for components that are only reported (they never make the node unready). */
  readonly critical: boolean;
}

export interface HealthSnapshot {
  readonly live: boolean;
  readonly ready: boolean;
  readonly started: boolean;
  readonly draining: boolean;
  readonly components: readonly ComponentStatus[];
}

export type ServingStatus = 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

export interface HealthHandle {
  readonly name: string;
  up(detail?: string): void;
  down(detail: string): void;
  /** Unregisters the component (e.g. a peer removed by a config reload). */
  remove(): void;
}

export interface RegisterOptions {
  kind: ComponentKind;
  /** gRPC service names gated by this component; default every service. */
  services?: readonly string[];
  /** Start as up; default down with detail "starting". */
  up?: boolean;
  /** Shown in snapshots and metrics but does not gate readiness (default true: it gates). */
  critical?: boolean;
}

interface Entry {
  name: string;
  kind: ComponentKind;
  up: boolean;
  detail: string;
  since: number;
  services: readonly string[] | null;
  critical: boolean;
}

/** The service name gRPC health checking uses for the server as a whole. */
export const OVERALL_SERVICE = '';

/**
 * Emits 'change' (no arguments) whenever readiness of any service may have changed; listeners
 * re-read what they care about (cheap: a loop over a handful of components).
 */
export class HealthModel extends EventEmitter {
  private readonly entries = new Map<string, Entry>();
  private readonly services = new Set<string>([OVERALL_SERVICE]);
  private isStarted = false;
  private isDraining = false;
  private fatal: string | null = null;

  /** Declares a gRPC service name that health checks may ask about. */
  defineService(name: string): void {
    if (this.services.has(name)) return;
    this.services.add(name);
    this.emit('change');
  }

  knownServices(): string[] {
    return [...this.services];
  }

  register(name: string, opts: RegisterOptions): HealthHandle {
    if (this.entries.has(name)) throw new Error(`health component "${name}" is already registered`);
    const entry: Entry = {
      name,
      kind: opts.kind,
      up: opts.up ?? false,
      detail: opts.up === true ? '' : 'starting',
      since: Date.now(),
      services: opts.services === undefined ? null : [...opts.services],
      critical: opts.critical ?? true,
    };
    this.entries.set(name, entry);
    for (const s of entry.services ?? []) this.services.add(s);
    this.emit('change');
    const set = (up: boolean, detail: string): void => {
      if (this.entries.get(name) !== entry) return; // removed
      if (entry.up === up && entry.detail === detail) return;
      const changed = entry.up !== up;
      entry.up = up;
      entry.detail = detail;
      if (changed) {
        entry.since = Date.now();
        this.emit('change');
      }
    };
    return {
      name,
      up: (detail = '') => set(true, detail),
      down: (detail) => set(false, detail),
      remove: () => {
        if (this.entries.get(name) === entry) {
          this.entries.delete(name);
          this.emit('change');
        }
      },
    };
  }

  /** Start-up finished (listeners bound, initial connections attempted). */
  markStarted(): void {
    if (this.isStarted) return;
    this.isStarted = true;
    this.emit('change');
  }

  /** Graceful drain began: the node reports not ready from now on. */
  startDraining(): void {
    if (this.isDraining) return;
    this.isDraining = true;
    this.emit('change');
  }

  /** Something unrecoverable happened: liveness fails so the orchestrator restarts the process. */
  markFatal(reason: string): void {
    if (this.fatal !== null) return;
    this.fatal = reason;
    this.emit('change');
  }

  get started(): boolean {
    return this.isStarted;
  }

  get draining(): boolean {
    return this.isDraining;
  }

  /** Liveness: false only after markFatal (a wedged process fails probes by not answering). */
  get live(): boolean {
    return this.fatal === null;
  }

  get fatalReason(): string | null {
    return this.fatal;
  }

  /** Readiness of the node (service "") or of one gRPC service. Unknown services are not ready. */
  ready(service: string = OVERALL_SERVICE): boolean {
    return this.serviceStatus(service) === 'SERVING';
  }

  serviceStatus(service: string = OVERALL_SERVICE): ServingStatus {
    if (!this.services.has(service)) return 'SERVICE_UNKNOWN';
    if (!this.isStarted || this.isDraining || this.fatal !== null) return 'NOT_SERVING';
    for (const e of this.entries.values()) {
      if (e.up || !e.critical) continue;
      if (service === OVERALL_SERVICE || e.services === null || e.services.includes(service)) return 'NOT_SERVING';
    }
    return 'SERVING';
  }

  component(name: string): ComponentStatus | undefined {
    const e = this.entries.get(name);
    return e === undefined ? undefined : { ...e };
  }

  snapshot(): HealthSnapshot {
    return {
      live: this.live,
      ready: this.ready(),
      started: this.isStarted,
      draining: this.isDraining,
      components: [...this.entries.values()].map((e) => ({ ...e })),
    };
  }

  /** Why the node is not ready, in one line (empty when ready). */
  notReadyReason(): string {
    if (this.fatal !== null) return `fatal: ${this.fatal}`;
    if (this.isDraining) return 'draining';
    if (!this.isStarted) return 'starting';
    const down = [...this.entries.values()].filter((e) => !e.up && e.critical).map((e) => `${e.name} (${e.detail || 'down'})`);
    return down.length === 0 ? '' : `down: ${down.join(', ')}`;
  }
}
