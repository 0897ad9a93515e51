// The gRPC server of the training service (sluice.v1.TensorTransfer), run by the training
// thread on its own port (listeners.training, 8003), the one port the service is served on
// (listeners.grpc answers its calls UNIMPLEMENTED: grpc-port-answer.ts).
import * as grpc from '@grpc/grpc-js';
import { addTensorTransferService, type TensorTransferServiceOptions } from './grpc-service.ts';
import { receiveEventFramingInterceptor } from './receive-event-framing.ts';
import type { TrainingNode } from './training-node.ts';
import { widenServerReceiveWindow } from '../grpc/server-receive-window.ts';
import { shutdownGrpcServer } from '../grpc/server-shutdown.ts';
import { serveGrpcPlaintext } from '../grpc/plaintext-binding.ts';
import type { ListenerLimits } from '../net/connection-limits.ts';

/** HTTP/2 receive window per connection and stream: a Push of 1 MiB chunks flows without stalls. */
export const TRAINING_RECEIVE_WINDOW_BYTES = 16 * 1024 * 1024;

export interface GrpcBinding {
  port: number;
  /** Stops accepting connections (open ones drain through the server's shutdown). */
  stopAccepting(): void;
  close(): Promise<void>;
}

/** Binds a grpc-js server some other way than plaintext host:port (sluice's TLS listener). */
export type GrpcBinder = (server: grpc.Server, host: string, port: number) => Promise<GrpcBinding>;

export interface TrainingGrpcServerOptions extends TensorTransferServiceOptions {
  /** Server interceptors (the security gates: src/security/grpc-gate-interceptor.ts). */
  interceptors?: grpc.ServerInterceptor[];
  /** Binds the server some other way than plaintext host:port (sluice's TLS listener). */
  binder?: GrpcBinder;
  /** More services on the same server (grpc.health.v1). */
  addServices?: (server: grpc.Server) => void;
  /** The port's connection limits (listeners.grpc); without them, plaintext uses grpc-js's own bindAsync. */
  limits?: ListenerLimits;
}

export class TrainingGrpcServer {
  private readonly server: grpc.Server;
  private binding: GrpcBinding | undefined;

  constructor(
    node: TrainingNode,
    private readonly host: string,
    private readonly port: number,
    private readonly opts: TrainingGrpcServerOptions = {},
  ) {
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': node.limits.maxChunkBytes + 64 * 1024,
      // A connection with no call open for this long gets GOAWAY.
      ...(opts.limits !== undefined ? { 'grpc.max_connection_idle_ms': opts.limits.idleTimeoutMs } : {}),
      // The pooled Push decoder and the data-event framing come first: they need grpc-js's own call object.
      interceptors: [...(opts.pushBuffers !== undefined ? [opts.pushBuffers.interceptor] : []), receiveEventFramingInterceptor, ...(opts.interceptors ?? [])],
    });
    widenServerReceiveWindow(this.server, TRAINING_RECEIVE_WINDOW_BYTES);
    addTensorTransferService(this.server, node, opts);
    opts.addServices?.(this.server);
  }

  /** Resolves with the bound port. */
  async start(): Promise<number> {
    if (this.opts.binder !== undefined) {
      this.binding = await this.opts.binder(this.server, this.host, this.port);
      return this.binding.port;
    }
    if (this.opts.limits !== undefined) {
      this.binding = await serveGrpcPlaintext(this.server, this.host, this.port, this.opts.limits);
      return this.binding.port;
    }
    return this.bindPlain(`${this.host}:${this.port}`);
  }

  /** Stops accepting connections; open calls keep running. */
  stopAccepting(): void {
    this.binding?.stopAccepting();
  }

  async stop(graceMs: number): Promise<void> {
    this.stopAccepting();
    await shutdownGrpcServer(this.server, graceMs);
    await this.binding?.close();
  }

  private bindPlain(address: string): Promise<number> {
    return new Promise((resolve, reject) => this.server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  }
}
