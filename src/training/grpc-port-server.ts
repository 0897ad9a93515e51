// listeners.grpc (8001) of a training-only node (no inference routes), served by the training
// thread: grpc.health.v1 for probes, and sluice.v1.TensorTransfer answered UNIMPLEMENTED with
// the training listener's port (the service is served there alone). A grpc-js server of its
// own: the training server's services must not be reachable through this port.
import * as grpc from '@grpc/grpc-js';
import { serveGrpcPlaintext } from '../grpc/plaintext-binding.ts';
import { shutdownGrpcServer } from '../grpc/server-shutdown.ts';
import type { ListenerLimits } from '../net/connection-limits.ts';
import type { GrpcBinder, GrpcBinding } from './grpc-server.ts';
import { addNotOnGrpcPortService, notOnGrpcPortMessage } from './grpc-port-answer.ts';

export interface TrainingGrpcPortOptions {
  host: string;
  port: number;
  /** The bound port of listeners.training, named in TensorTransfer's answer. */
  trainingPort: number;
  limits: ListenerLimits;
  /** Binds some other way than plaintext (sluice's TLS listener). */
  binder?: GrpcBinder;
  /** More services (grpc.health.v1). */
  addServices?: (server: grpc.Server) => void;
}

export class TrainingGrpcPort {
  private readonly server: grpc.Server;
  private binding: GrpcBinding | undefined;

  constructor(private readonly opts: TrainingGrpcPortOptions) {
    // A connection with no call open for this long gets GOAWAY.
    this.server = new grpc.Server({ 'grpc.max_connection_idle_ms': opts.limits.idleTimeoutMs });
    opts.addServices?.(this.server);
    addNotOnGrpcPortService(this.server, notOnGrpcPortMessage(opts.trainingPort));
  }

  /** Resolves with the bound port. */
  async start(): Promise<number> {
    const { host, port, binder, limits } = this.opts;
    this.binding = binder !== undefined ? await binder(this.server, host, port) : await serveGrpcPlaintext(this.server, host, port, limits);
    return this.binding.port;
  }

  /** Stops accepting; open calls (health watches) get up to graceMs. */
  async stop(graceMs: number): Promise<void> {
    this.binding?.stopAccepting();
    await shutdownGrpcServer(this.server, graceMs);
    await this.binding?.close();
  }
}
