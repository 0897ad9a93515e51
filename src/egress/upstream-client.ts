// A gRPC client for one model server. Requests and responses pass through as serialized bytes
// (the ingress already checked them), so the egress never decodes tensors. Calls fail fast with
// UNAVAILABLE when the server is down (no wait-for-ready) and carry the caller's deadline.
import * as grpc from '@grpc/grpc-js';
import { METHODS } from '../kserve/grpc-service.ts';
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';
import { decodeMessage, encodeMessage } from '../kserve/proto.ts';
import { GrpcStatus, type GrpcStatusCode, isGrpcStatusCode } from '../kserve/status.ts';

export type UpstreamMethod = 'ModelInfer' | 'ModelReady' | 'ModelMetadata';

export interface UpstreamCallOptions {
  /** Absolute deadline (Date.now() milliseconds). */
  deadline: number;
  requestId: string;
}

export interface UpstreamCall {
  readonly result: Promise<Buffer>;
  cancel(): void;
}

const identity = (b: Buffer): Buffer => b;

export class UpstreamClient {
  readonly address: string;
  private readonly client: grpc.Client;

  constructor(address: string, maxMessageBytes: number) {
    this.address = address;
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': maxMessageBytes,
      'grpc.max_send_message_length': maxMessageBytes,
      // A restarted model server is found again within a second or two.
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2000,
    });
  }

  call(method: UpstreamMethod, payload: Buffer, opts: UpstreamCallOptions): UpstreamCall {
    const md = new grpc.Metadata();
    md.set('x-request-id', opts.requestId);
    let resolve!: (b: Buffer) => void;
    let reject!: (e: InferenceError) => void;
    const result = new Promise<Buffer>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const call = this.client.makeUnaryRequest<Buffer, Buffer>(
      METHODS[method].path,
      identity,
      identity,
      payload,
      md,
      { deadline: opts.deadline },
      (err, value) => {
        if (err !== null) reject(this.translate(err));
        else resolve(value ?? Buffer.alloc(0));
      },
    );
    return { result, cancel: () => call.cancel() };
  }

  /** KServe ServerReady of the model server (health probes): true only if it says ready. */
  serverReady(deadline: number): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest<Buffer, Buffer>(
        METHODS.ServerReady.path,
        identity,
        identity,
        encodeMessage('ServerReadyRequest', {}),
        new grpc.Metadata(),
        { deadline },
        (err, value) => {
          if (err !== null) reject(this.translate(err));
          else resolve(decodeMessage<{ ready: boolean }>('ServerReadyResponse', value ?? Buffer.alloc(0)).ready === true);
        },
      );
    });
  }

  close(): void {
    this.client.close();
  }

  /** Maps a gRPC error from the model server to the inference error the caller sees. */
  private translate(err: grpc.ServiceError): InferenceError {
    const status: GrpcStatusCode = isGrpcStatusCode(err.code) ? err.code : GrpcStatus.UNKNOWN;
    const details = err.details || grpc.status[status] || 'no details';
    switch (status) {
      case GrpcStatus.UNAVAILABLE:
        return new InferenceError(InferenceErrorCode.UPSTREAM_UNAVAILABLE, `model server ${this.address} is unavailable: ${details}`);
      case GrpcStatus.DEADLINE_EXCEEDED:
        return new InferenceError(InferenceErrorCode.DEADLINE_EXCEEDED, `model server ${this.address} did not answer before the deadline`);
      case GrpcStatus.NOT_FOUND:
        return new InferenceError(InferenceErrorCode.MODEL_NOT_FOUND, details);
      case GrpcStatus.INVALID_ARGUMENT:
        return new InferenceError(InferenceErrorCode.BAD_REQUEST, details);
      case GrpcStatus.RESOURCE_EXHAUSTED:
        return new InferenceError(InferenceErrorCode.UPSTREAM_ERROR, `model server ${this.address}: ${details}`, { grpcStatus: status });
      case GrpcStatus.CANCELLED:
        return new InferenceError(InferenceErrorCode.CANCELLED, details);
      default:
        return new InferenceError(InferenceErrorCode.UPSTREAM_ERROR, `model server ${this.address}: ${details}`, { grpcStatus: status });
    }
  }
}
