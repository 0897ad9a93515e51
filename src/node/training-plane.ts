// The main thread's handle on the training thread (src/node/training-thread.ts): starts it,
// answers its gate checks with the node's SecurityRuntime, passes its security events and log
// records on, merges its metrics into the node's scrape, passes its training-peer link reports
// on, feeds the thread's grpc.health.v1 mirror with the node's HealthModel, and stops it. A ConfigError or a bind
// failure on the thread fails start() here, with the thread's message.
import { Worker } from 'node:worker_threads';
import type { SluiceConfig } from '../config/schema.ts';
import { ConfigError } from '../config/load.ts';
import type { LatencySampleRing } from '../scheduler/latency-sample-ring.ts';
import { answerGateCheck, type GateMessage } from '../security/remote-gates.ts';
import type { SecurityRuntime } from '../security/security-runtime.ts';
import type { HealthModel } from '../telemetry/health.ts';
import { serviceStatuses } from '../telemetry/health-mirror.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { RemoteMetrics, SluiceMetrics } from '../telemetry/metrics.ts';
import { applyHeapGrowthPercent } from './heap-growth.ts';
import {
  TRAINING_THREAD_NAME,
  type FromTrainingThread,
  type ThreadPriorityInfo,
  type ToTrainingThread,
  type TrainingThreadEndpoints,
  type TrainingThreadInit,
} from './training-thread-messages.ts';

export interface TrainingPlaneOptions {
  config: SluiceConfig;
  configDir?: string;
  logger: Logger;
  ring: LatencySampleRing;
  /** The ring the native engine's ingress feeds (the training governor reads it itself). */
  engineRing?: LatencySampleRing;
  metrics: SluiceMetrics;
  security?: SecurityRuntime;
  /** Gate every TensorTransfer call (keys, JWT, rate limits or audit are on). */
  gated: boolean;
  /**
   * Serve listeners.grpc (no inference routes on this node): grpc.health.v1, and TensorTransfer
   * answered UNIMPLEMENTED with the training listener's port.
   */
  serveGrpcPort: boolean;
  /** With serveGrpcPort: the node's health, which grpc.health.v1 on that port (served by the thread) reports. */
  health?: HealthModel;
  /** A link to a configured training peer opened (up, detail: its remote address) or closed. */
  onPeerLink?: (peer: string, up: boolean, detail: string) => void;
  /** The thread ended without being asked to (a fatal error on it); inference goes on. */
  onUnexpectedExit?: (reason: string) => void;
}

const LEVELS: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
const STOP_TIMEOUT_MS = 10_000;
const METRICS_TIMEOUT_MS = 2_000;


export class TrainingPlane {
  readonly endpoints: TrainingThreadEndpoints;
  readonly priority: ThreadPriorityInfo;
  private readonly worker: Worker;
  private readonly metricsWaiters = new Map<number, (m: RemoteMetrics) => void>();
  private nextMetricsId = 1;
  private closed: Promise<void> | undefined;
  private exited = false;
  /** Stops feeding the thread's health mirror. */
  private unmirror: () => void = () => {};

  private constructor(worker: Worker, ready: Extract<FromTrainingThread, { type: 'ready' }>) {
    this.worker = worker;
    this.endpoints = ready.endpoints;
    this.priority = ready.priority;
  }

  static async start(opts: TrainingPlaneOptions): Promise<TrainingPlane> {
    const tls = opts.security?.config.tls;
    const mirrored = opts.serveGrpcPort && opts.config.listeners.grpc !== undefined ? opts.health : undefined;
    const init: TrainingThreadInit = {
      config: opts.config,
      ...(opts.configDir !== undefined ? { configDir: opts.configDir } : {}),
      ring: opts.ring.buffer,
      ...(opts.engineRing !== undefined ? { engineRing: opts.engineRing.buffer } : {}),
      gated: opts.gated,
      ...(tls?.enabled === true ? { tls } : {}),
      serveGrpcPort: opts.serveGrpcPort,
      ...(mirrored !== undefined ? { health: serviceStatuses(mirrored) } : {}),
    };
    const heapGrowth = applyHeapGrowthPercent(opts.config.training.heapGrowthPercent);
    if (heapGrowth !== undefined) opts.logger.info({ heapGrowingPercent: heapGrowth }, 'V8 heap growth for bulk set (process-wide)');
    const worker = new Worker(new URL('./training-thread-entry.mjs', import.meta.url), { workerData: init, // V8 flags are process-wide (a worker refuses them); the entry registers the TS loader itself.
      execArgv: [], env: process.env });
    const log = opts.logger.child({ thread: TRAINING_THREAD_NAME });
    const unmirror = mirrored !== undefined ? TrainingPlane.mirrorHealth(mirrored, worker) : () => {};
    let plane: TrainingPlane | undefined;
    const ready = new Promise<Extract<FromTrainingThread, { type: 'ready' }>>((resolve, reject) => {
      worker.on('message', (m: FromTrainingThread) => {
        if (m.type === 'ready') resolve(m);
        else if (m.type === 'failed') reject(m.code === 'SLUICE_ERR_CONFIG' ? new ConfigError(m.message) : Object.assign(new Error(`training thread: ${m.message}`), { code: m.code }));
        else TrainingPlane.onMessage(m, opts, log, worker, () => plane);
      });
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`training thread exited (${code}) before it was ready`)));
    });
    try {
      const r = await ready;
      plane = new TrainingPlane(worker, r);
      plane.unmirror = unmirror;
    } catch (err) {
      unmirror();
      await worker.terminate();
      throw err;
    }
    const p = plane;
    let failure = '';
    worker.on('error', (err) => {
      failure = err.message;
      log.error({ err: err.message }, 'training thread failed');
    });
    worker.on('exit', (code) => {
      p.exited = true;
      p.unmirror();
      for (const w of p.metricsWaiters.values()) w([]);
      p.metricsWaiters.clear();
      if (p.closed === undefined) {
        log.error({ code }, 'training thread exited');
        opts.onUnexpectedExit?.(`training thread exited (${code})${failure !== '' ? `: ${failure}` : ''}`);
      }
    });
    opts.metrics.setThreadPriority(TRAINING_THREAD_NAME, p.priority);
    opts.metrics.addRemoteSource(() => p.readMetrics());
    return p;
  }

  /** Sends the node's service statuses to the thread whenever one changes (messages queue until it listens). */
  private static mirrorHealth(health: HealthModel, worker: Worker): () => void {
    let last = JSON.stringify(serviceStatuses(health));
    const feed = (): void => {
      const statuses = serviceStatuses(health);
      const json = JSON.stringify(statuses);
      if (json === last) return;
      last = json;
      worker.postMessage({ type: 'health', statuses } satisfies ToTrainingThread);
    };
    health.on('change', feed);
    return () => health.off('change', feed);
  }

  private static onMessage(m: FromTrainingThread, opts: TrainingPlaneOptions, log: Logger, worker: Worker, plane: () => TrainingPlane | undefined): void {
    switch (m.type) {
      case 'log': {
        const { level, msg, ...fields } = JSON.parse(m.line) as { level: number; msg?: string } & Record<string, unknown>;
        log[LEVELS[level] ?? 'info'](fields, msg ?? '');
        return;
      }
      case 'security-event':
        opts.security?.emit(m.event);
        return;
      case 'gate.check': {
        const post = (r: GateMessage): void => worker.postMessage(r);
        if (opts.security === undefined) post({ type: 'gate.allowed', id: m.id, decision: { principal: { kind: 'anonymous', actor: 'anonymous', tenant: null, caps: ['infer', 'train', 'admin'] }, tenant: { name: null, id: 0 } }, audited: false });
        else answerGateCheck(opts.security.gates, m, post);
        return;
      }
      case 'peer-link':
        opts.onPeerLink?.(m.peer, m.up, m.detail);
        return;
      case 'metrics':
        plane()?.metricsWaiters.get(m.id)?.(m.metrics);
        plane()?.metricsWaiters.delete(m.id);
        return;
      default:
        return;
    }
  }

  /** The thread's link, queue and RDMA metrics (empty when it does not answer in time). */
  private readMetrics(): Promise<RemoteMetrics> {
    if (this.exited) return Promise.resolve([]);
    const id = this.nextMetricsId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.metricsWaiters.delete(id);
        resolve([]);
      }, METRICS_TIMEOUT_MS);
      timer.unref();
      this.metricsWaiters.set(id, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      this.post({ type: 'metrics', id });
    });
  }

  private post(m: ToTrainingThread): void {
    if (!this.exited) this.worker.postMessage(m);
  }

  /** Drain: stop accepting TensorTransfer connections; open calls get up to graceMs. */
  beginDrain(graceMs: number): void {
    this.post({ type: 'drain', graceMs });
  }

  /** Stops transfers, links and listeners on the thread, then the thread itself. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.unmirror();
      if (!this.exited) {
        const done = new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, STOP_TIMEOUT_MS);
          this.worker.on('message', (m: FromTrainingThread) => {
            if (m.type === 'closed') {
              clearTimeout(timer);
              resolve();
            }
          });
          this.worker.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
        });
        this.post({ type: 'close' });
        await done;
        await this.worker.terminate();
      }
    })();
    return this.closed;
  }
}
