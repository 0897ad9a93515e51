// A gRPC server for the training service alone, for nodes whose gRPC port serves no inference
// routes (a training receiver, say). When the node also runs the inference ingress, the
// service is added to the ingress's server instead, so both share port 8001.
import * as grpc from '@grpc/grpc-js';
import { addTensorTransferService, type TensorTransferServiceOptions } from './grpc-service.ts';
import type { TrainingNode } from './training-node.ts';

export class TrainingGrpcServer {
  private readonly server: grpc.Server;

  constructor(
    node: TrainingNode,
    private readonly host: string,
    private readonly port: number,
    opts: TensorTransferServiceOptions = {},
  ) {
    this.server = new grpc.Server({ 'grpc.max_receive_message_length': node.limits.maxChunkBytes + 64 * 1024 });
    addTensorTransferService(this.server, node, opts);
  }

  /** Resolves with the bound port. */
  start(): Promise<number> {
    return new Promise((resolve, reject) =>
      this.server.bindAsync(`${this.host}:${this.port}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
  }

  stop(graceMs: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
