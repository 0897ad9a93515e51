// What a sluice.v1.TensorTransfer call that reaches listeners.grpc (8001) gets: the service is
// served on the training listener alone (listeners.training, 8003), so the call is answered
// UNIMPLEMENTED, with a message naming that listener's port and x-request-id in the trailers,
// instead of grpc-js's bare "does not implement the method". The ingress answers it for the
// TypeScript and the engine path alike (the engine relays every unknown path to it); the
// training thread answers it on a training-only node's gRPC port.
import * as grpc from '@grpc/grpc-js';
import { resolveRequestId } from '../telemetry/request-id.ts';
import { TENSOR_TRANSFER_SERVICE, tensorTransferClientConstructor } from './proto.ts';

/** The :path prefix of every TensorTransfer method. */
export const TENSOR_TRANSFER_PATH_PREFIX = `/${TENSOR_TRANSFER_SERVICE}/`;

/** The default port of listeners.training (docs/training.md). */
const DEFAULT_TRAINING_PORT = 8003;

/**
 * The grpc-message of the answer. trainingPort: the bound port of this node's training listener,
 * undefined on a node without a training segment.
 */
export function notOnGrpcPortMessage(trainingPort: number | undefined): string {
  if (trainingPort !== undefined) return `${TENSOR_TRANSFER_SERVICE} is served on listeners.training (port ${trainingPort}), not on listeners.grpc`;
  return `${TENSOR_TRANSFER_SERVICE} is not served here: this node has no segments.training; training nodes serve it on listeners.training (port ${DEFAULT_TRAINING_PORT} by default)`;
}

/** The port of a listener endpoint "host:port" or "[v6]:port". */
export function endpointPort(endpoint: string): number {
  return Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));
}

/**
 * Registers TensorTransfer on a grpc-js server with every method answering UNIMPLEMENTED
 * (`message`, x-request-id in the trailers) before reading the request.
 */
export function addNotOnGrpcPortService(server: grpc.Server, message: string): void {
  const refusal = (md: grpc.Metadata): grpc.StatusObject => {
    const first = (name: string): string | undefined => {
      const v = md.get(name)[0];
      return typeof v === 'string' ? v : undefined;
    };
    const trailers = new grpc.Metadata();
    trailers.set('x-request-id', resolveRequestId(first('x-request-id'), first('traceparent')));
    return { code: grpc.status.UNIMPLEMENTED, details: message, metadata: trailers };
  };
  const definition = tensorTransferClientConstructor().service;
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    // Unary and client-streaming handlers answer through their callback; the others end the stream.
    handlers[name] = !method.responseStream
      ? (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(refusal(call.metadata))
      : (call: grpc.ServerWritableStream<unknown, unknown>) => call.emit('error', refusal(call.metadata));
  }
  server.addService(definition, handlers);
}
