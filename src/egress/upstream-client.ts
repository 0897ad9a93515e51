// The egress's client for one model server. Requests and responses pass through as serialized
// bytes (the ingress already checked them), so the egress never decodes tensors. Calls fail
// fast with UNAVAILABLE when the server is down and carry the caller's deadline and request id.
import { METHODS } from '../kserve/grpc-service.ts';
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';
import { decodeMessage, encodeMessage } from '../kserve/proto.ts';
import { GrpcStatus } from '../kserve/status.ts';
import { type GrpcCallError, Http2GrpcClient, type MessageParts } from './http2-grpc-client.ts';

import type { CallMethodName } from '../wire/inference-envelope.ts';

export type UpstreamMethod = CallMethodName;

export interface UpstreamCallOptions {
  /** Absolute deadline (Date.now() milliseconds). */
  deadline: number;
  requestId: string;
  /** W3C traceparent passed on to the model server as metadata. */
  traceparent?: string | undefined;
}

export interface UpstreamCall {
  /** The serialized response, in the parts it arrived in (forwarded without joining them). */
  readonly result: Promise<MessageParts>;
  cancel(): void;
}

export class UpstreamClient {
  readonly address: string;
  private readonly client: Http2GrpcClient;

  constructor(address: string, maxMessageBytes: number) {
    this.address = address;
    this.client = new Http2GrpcClient(address, { maxMessageBytes });
  }

  call(method: UpstreamMethod, payload: Buffer, opts: UpstreamCallOptions): UpstreamCall {
    const metadata: Record<string, string> = { 'x-request-id': opts.requestId };
    if (opts.traceparent !== undefined) metadata.traceparent = opts.traceparent;
    const call = this.client.unaryParts(METHODS[method].path, payload, opts.deadline, metadata);
    return { result: call.result.catch((err: GrpcCallError) => Promise.reject(this.translate(err))), cancel: call.cancel };
  }

  /** KServe ServerReady of the model server (health probes): true only if it says ready. */
  serverReady(deadline: number): Promise<boolean> {
    const call = this.client.unary(METHODS.ServerReady.path, encodeMessage('ServerReadyRequest', {}), deadline, {});
    return call.result.then(
      (value) => decodeMessage<{ ready: boolean }>('ServerReadyResponse', value).ready === true,
      (err: GrpcCallError) => Promise.reject(this.translate(err)),
    );
  }

  close(): void {
    this.client.close();
  }

  /** Maps a gRPC failure of the model server to the inference error the caller sees. */
  private translate(err: GrpcCallError): InferenceError {
    const details = err.details || 'no details';
    switch (err.status) {
      case GrpcStatus.UNAVAILABLE:
        return new InferenceError(InferenceErrorCode.UPSTREAM_UNAVAILABLE, `model server ${this.address} is unavailable: ${details}`);
      case GrpcStatus.DEADLINE_EXCEEDED:
        return new InferenceError(InferenceErrorCode.DEADLINE_EXCEEDED, `model server ${this.address} did not answer before the deadline`);
      case GrpcStatus.NOT_FOUND:
        return new InferenceError(InferenceErrorCode.MODEL_NOT_FOUND, details);
      case GrpcStatus.INVALID_ARGUMENT:
        return new InferenceError(InferenceErrorCode.BAD_REQUEST, details);
      case GrpcStatus.CANCELLED:
        return new InferenceError(InferenceErrorCode.CANCELLED, details);
      default:
        return new InferenceError(InferenceErrorCode.UPSTREAM_ERROR, `model server ${this.address}: ${details}`, { grpcStatus: err.status });
    }
  }
}
