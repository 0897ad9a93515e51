// What the main thread and the training thread (src/node/training-thread.ts) tell each other.
// Everything crosses by structured clone; nothing here is per chunk or per frame.
import type { SluiceConfig } from '../config/schema.ts';
import type { SecurityEvent } from '../security/events.ts';
import type { GateMessage } from '../security/remote-gates.ts';
import type { TlsConfig } from '../security/tls-options.ts';
import type { ServiceStatuses } from '../telemetry/health-mirror.ts';
import type { RemoteMetrics } from '../telemetry/metrics.ts';

export const TRAINING_THREAD_NAME = 'sluice-training';

export interface TrainingThreadInit {
  config: SluiceConfig;
  configDir?: string;
  /** LatencySampleRing buffer: inference samples in, the governor's state out. */
  ring: SharedArrayBuffer;
  /** LatencySampleRing buffer the native engine's ingress writes (its answered calls' round trips). */
  engineRing?: SharedArrayBuffer;
  /** The security gates (train capability, keys, JWT, audit) run on the main thread for every call. */
  gated: boolean;
  /** TLS of the training listener (paths resolved), when security.tls is on. */
  tls?: TlsConfig;
  /**
   * Also serve listeners.grpc (a node with no inference routes): grpc.health.v1, and
   * TensorTransfer answered UNIMPLEMENTED with the training listener's port.
   */
  serveGrpcPort: boolean;
  /** With serveGrpcPort: the node's service statuses at start, for grpc.health.v1 on that port ('health' messages follow). */
  health?: ServiceStatuses;
}

export interface ThreadPriorityInfo {
  policy: string;
  nice: number;
  tid: number;
}

export interface TrainingThreadEndpoints {
  /** The TensorTransfer listener (listeners.training). */
  service: string;
  /** The training segment listener (segments.training.listen). */
  segment?: string;
  /** listeners.grpc, when this thread serves it. */
  grpc?: string;
}

export type FromTrainingThread =
  | GateMessage
  | { type: 'log'; line: string }
  | { type: 'security-event'; event: SecurityEvent }
  | { type: 'ready'; endpoints: TrainingThreadEndpoints; priority: ThreadPriorityInfo }
  | { type: 'failed'; message: string; code?: string }
  | { type: 'metrics'; id: number; metrics: RemoteMetrics }
  /** A link to a configured training peer opened (up, detail: its remote address) or closed. */
  | { type: 'peer-link'; peer: string; up: boolean; detail: string }
  | { type: 'closed' };

export type ToTrainingThread =
  | GateMessage
  | { type: 'metrics'; id: number }
  /** The node's service statuses changed (the thread's grpc.health.v1 mirror). */
  | { type: 'health'; statuses: ServiceStatuses }
  | { type: 'drain'; graceMs: number }
  | { type: 'close' };
