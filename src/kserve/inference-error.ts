// The one error type of the inference path. It carries a stable SLUICE_ERR_* code, the gRPC
// status the gRPC ingress answers with, and the HTTP status the REST ingress answers with, so
// the same failure reads the same on every protocol and across the inference segment.
import { SluiceError } from '../errors.ts';
import { GrpcStatus, type GrpcStatusCode, httpStatusForGrpc } from './status.ts';

export const InferenceErrorCode = {
  /** No route, no upstream, or the model server does not know the model. */
  MODEL_NOT_FOUND: 'SLUICE_ERR_MODEL_NOT_FOUND',
  /** A request that is not well-formed for the protocol (missing fields, wrong types). */
  BAD_REQUEST: 'SLUICE_ERR_BAD_REQUEST',
  MALFORMED_JSON: 'SLUICE_ERR_MALFORMED_JSON',
  MALFORMED_PROTOBUF: 'SLUICE_ERR_MALFORMED_PROTOBUF',
  UNKNOWN_DATATYPE: 'SLUICE_ERR_UNKNOWN_DATATYPE',
  /** Shape, element count and byte length of a tensor disagree. */
  TENSOR_SIZE: 'SLUICE_ERR_TENSOR_SIZE',
  /** Inference-Header-Content-Length missing, malformed or past the body. */
  BINARY_HEADER: 'SLUICE_ERR_BINARY_HEADER',
  TOO_LARGE: 'SLUICE_ERR_TOO_LARGE',
  DEADLINE_EXCEEDED: 'SLUICE_ERR_DEADLINE_EXCEEDED',
  /** No live link to any egress peer of the route. */
  PEER_UNAVAILABLE: 'SLUICE_ERR_PEER_UNAVAILABLE',
  /** The model server cannot be reached. */
  UPSTREAM_UNAVAILABLE: 'SLUICE_ERR_UPSTREAM_UNAVAILABLE',
  /** The model server answered with an error status (kept as is). */
  UPSTREAM_ERROR: 'SLUICE_ERR_UPSTREAM_ERROR',
  CANCELLED: 'SLUICE_ERR_CANCELLED',
  /** Shed at admission: the queued work would not finish before the deadline (load shedding). */
  OVERLOADED: 'SLUICE_ERR_OVERLOADED',
  NOT_FOUND: 'SLUICE_ERR_NOT_FOUND',
  /** A model or the server exists but is not ready (readiness endpoints). */
  NOT_READY: 'SLUICE_ERR_NOT_READY',
  METHOD_NOT_ALLOWED: 'SLUICE_ERR_METHOD_NOT_ALLOWED',
  /** The egress peer runs an older sluice whose inference envelope lacks the method. */
  NOT_IMPLEMENTED: 'SLUICE_ERR_NOT_IMPLEMENTED',
  INTERNAL: 'SLUICE_ERR_INTERNAL',
  /** Security gates (src/security/gates.ts): no or invalid credentials. */
  UNAUTHENTICATED: 'SLUICE_ERR_UNAUTHENTICATED',
  TOKEN_EXPIRED: 'SLUICE_ERR_TOKEN_EXPIRED',
  /** The credentials lack the capability the call needs (infer, train, admin). */
  PERMISSION_DENIED: 'SLUICE_ERR_PERMISSION_DENIED',
  /** Unknown tenant, a tenant acting for another, or a model the tenant may not use. */
  TENANT_DENIED: 'SLUICE_ERR_TENANT_DENIED',
  /** Traffic of one class aimed at the other segment. */
  SEGMENT_POLICY: 'SLUICE_ERR_SEGMENT_POLICY',
  RATE_LIMITED: 'SLUICE_ERR_RATE_LIMITED',
  /** Credentials cannot be checked right now (JWKS unreachable). */
  AUTH_UNAVAILABLE: 'SLUICE_ERR_AUTH_UNAVAILABLE',
  /** The audit log cannot record the request, so it is refused (fail closed). */
  AUDIT_UNAVAILABLE: 'SLUICE_ERR_AUDIT_UNAVAILABLE',
} as const;

export type InferenceErrorCode = (typeof InferenceErrorCode)[keyof typeof InferenceErrorCode];

const TITLES: Record<InferenceErrorCode, string> = {
  SLUICE_ERR_MODEL_NOT_FOUND: 'Model not found',
  SLUICE_ERR_BAD_REQUEST: 'Bad inference request',
  SLUICE_ERR_MALFORMED_JSON: 'Malformed JSON',
  SLUICE_ERR_MALFORMED_PROTOBUF: 'Malformed protobuf message',
  SLUICE_ERR_UNKNOWN_DATATYPE: 'Unknown tensor datatype',
  SLUICE_ERR_TENSOR_SIZE: 'Tensor size mismatch',
  SLUICE_ERR_BINARY_HEADER: 'Bad binary tensor header',
  SLUICE_ERR_TOO_LARGE: 'Request too large',
  SLUICE_ERR_DEADLINE_EXCEEDED: 'Deadline exceeded',
  SLUICE_ERR_PEER_UNAVAILABLE: 'Egress peer unavailable',
  SLUICE_ERR_UPSTREAM_UNAVAILABLE: 'Model server unavailable',
  SLUICE_ERR_UPSTREAM_ERROR: 'Model server error',
  SLUICE_ERR_CANCELLED: 'Request cancelled',
  SLUICE_ERR_OVERLOADED: 'Overloaded',
  SLUICE_ERR_NOT_FOUND: 'Not found',
  SLUICE_ERR_NOT_READY: 'Not ready',
  SLUICE_ERR_METHOD_NOT_ALLOWED: 'Method not allowed',
  SLUICE_ERR_NOT_IMPLEMENTED: 'Not implemented by the egress peer',
  SLUICE_ERR_INTERNAL: 'Internal error',
  SLUICE_ERR_UNAUTHENTICATED: 'Authentication required',
  SLUICE_ERR_TOKEN_EXPIRED: 'Token expired',
  SLUICE_ERR_PERMISSION_DENIED: 'Permission denied',
  SLUICE_ERR_TENANT_DENIED: 'Tenant not allowed',
  SLUICE_ERR_SEGMENT_POLICY: 'Segment policy violation',
  SLUICE_ERR_RATE_LIMITED: 'Rate limit exceeded',
  SLUICE_ERR_AUTH_UNAVAILABLE: 'Authentication unavailable',
  SLUICE_ERR_AUDIT_UNAVAILABLE: 'Audit log unavailable',
};

const DEFAULT_STATUS: Record<InferenceErrorCode, GrpcStatusCode> = {
  SLUICE_ERR_MODEL_NOT_FOUND: GrpcStatus.NOT_FOUND,
  SLUICE_ERR_BAD_REQUEST: GrpcStatus.INVALID_ARGUMENT,
  SLUICE_ERR_MALFORMED_JSON: GrpcStatus.INVALID_ARGUMENT,
  SLUICE_ERR_MALFORMED_PROTOBUF: GrpcStatus.INVALID_ARGUMENT,
  SLUICE_ERR_UNKNOWN_DATATYPE: GrpcStatus.INVALID_ARGUMENT,
  SLUICE_ERR_TENSOR_SIZE: GrpcStatus.INVALID_ARGUMENT,
  SLUICE_ERR_BINARY_HEADER: GrpcStatus.INVALID_ARGUMENT,
  SLUICE_ERR_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
  SLUICE_ERR_DEADLINE_EXCEEDED: GrpcStatus.DEADLINE_EXCEEDED,
  SLUICE_ERR_PEER_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  SLUICE_ERR_UPSTREAM_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  SLUICE_ERR_UPSTREAM_ERROR: GrpcStatus.UNKNOWN,
  SLUICE_ERR_CANCELLED: GrpcStatus.CANCELLED,
  SLUICE_ERR_OVERLOADED: GrpcStatus.RESOURCE_EXHAUSTED,
  SLUICE_ERR_NOT_FOUND: GrpcStatus.NOT_FOUND,
  SLUICE_ERR_NOT_READY: GrpcStatus.UNAVAILABLE,
  SLUICE_ERR_METHOD_NOT_ALLOWED: GrpcStatus.UNIMPLEMENTED,
  SLUICE_ERR_NOT_IMPLEMENTED: GrpcStatus.UNIMPLEMENTED,
  SLUICE_ERR_INTERNAL: GrpcStatus.INTERNAL,
  SLUICE_ERR_UNAUTHENTICATED: GrpcStatus.UNAUTHENTICATED,
  SLUICE_ERR_TOKEN_EXPIRED: GrpcStatus.UNAUTHENTICATED,
  SLUICE_ERR_PERMISSION_DENIED: GrpcStatus.PERMISSION_DENIED,
  SLUICE_ERR_TENANT_DENIED: GrpcStatus.PERMISSION_DENIED,
  SLUICE_ERR_SEGMENT_POLICY: GrpcStatus.PERMISSION_DENIED,
  SLUICE_ERR_RATE_LIMITED: GrpcStatus.RESOURCE_EXHAUSTED,
  SLUICE_ERR_AUTH_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  SLUICE_ERR_AUDIT_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
};

export class InferenceError extends SluiceError {
  declare readonly code: InferenceErrorCode;
  readonly grpcStatus: GrpcStatusCode;
  readonly httpStatus: number;

  constructor(
    code: InferenceErrorCode,
    message: string,
    options?: { grpcStatus?: GrpcStatusCode; httpStatus?: number; cause?: unknown },
  ) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.grpcStatus = options?.grpcStatus ?? DEFAULT_STATUS[code];
    this.httpStatus = options?.httpStatus ?? (code === InferenceErrorCode.TOO_LARGE ? 413 : code === InferenceErrorCode.METHOD_NOT_ALLOWED ? 405 : httpStatusForGrpc(this.grpcStatus));
  }

  get title(): string {
    return TITLES[this.code];
  }

  /** `urn:sluice:problem:model-not-found` for SLUICE_ERR_MODEL_NOT_FOUND. */
  get problemType(): string {
    return `urn:sluice:problem:${this.code.slice('SLUICE_ERR_'.length).toLowerCase().replaceAll('_', '-')}`;
  }
}

export function isInferenceErrorCode(code: string): code is InferenceErrorCode {
  return Object.hasOwn(TITLES, code);
}

/** Wraps anything thrown on the inference path so callers always get an InferenceError. */
export function toInferenceError(err: unknown): InferenceError {
  if (err instanceof InferenceError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new InferenceError(InferenceErrorCode.INTERNAL, message, { cause: err });
}
