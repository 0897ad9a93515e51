// The messages of the inference class between an ingress sluice and an egress sluice (see
// docs/inference.md, "Across the segment"). The transport frames, encrypts and carries them;
// the stream id of the link message correlates a call with its reply, and the tenant travels in
// the frame's authenticated data. Tensor bytes are never touched here: the payload of a call is
// the serialized gRPC request, that of a reply the serialized gRPC response, each sent as the
// second element of a gather list so nothing is copied to build the message.
import { InferenceError, InferenceErrorCode, isInferenceErrorCode } from '../kserve/inference-error.ts';
import { isGrpcStatusCode, type GrpcStatusCode } from '../kserve/status.ts';
import { isValidRequestId } from '../telemetry/request-id.ts';
import { MessageKind } from './message-kinds.ts';

/** Message kinds of the inference class (registered in message-kinds.ts). */
export const InferenceKind = {
  CALL: MessageKind.INFERENCE_CALL,
  REPLY: MessageKind.INFERENCE_REPLY,
  CANCEL: MessageKind.INFERENCE_CANCEL,
} as const;

export const ENVELOPE_VERSION = 1;

/** The gRPC method an inference call invokes on the model server. */
export const CallMethod = { ModelInfer: 1, ModelReady: 2, ModelMetadata: 3 } as const;
export type CallMethod = (typeof CallMethod)[keyof typeof CallMethod];
export const CALL_METHOD_NAMES: Record<CallMethod, 'ModelInfer' | 'ModelReady' | 'ModelMetadata'> = {
  1: 'ModelInfer',
  2: 'ModelReady',
  3: 'ModelMetadata',
};

export const MAX_REQUEST_ID_BYTES = 128;
export const MAX_MODEL_NAME_BYTES = 1024;
export const MAX_ERROR_MESSAGE_BYTES = 4096;
export const CancelReason = { CALLER: 0, DEADLINE: 1 } as const;

export interface CallHeader {
  method: CallMethod;
  /** Budget left when the call was sent, in milliseconds (relative: the two clocks need not agree). */
  timeoutMs: number;
  requestId: string;
  model: string;
  version: string;
}

export interface DecodedCall extends CallHeader {
  /** Serialized gRPC request (a view into the message). */
  payload: Buffer;
}

export interface ReplyHeader {
  /** gRPC status of the call; 0 = OK and the payload is the serialized response. */
  status: GrpcStatusCode;
  /** A SLUICE_ERR_* code when status is not OK ('' for an OK reply). */
  code: string;
  message: string;
  requestId: string;
}

export interface DecodedReply extends ReplyHeader {
  payload: Buffer;
}

export class EnvelopeError extends InferenceError {
  constructor(message: string) {
    super(InferenceErrorCode.INTERNAL, `bad inference envelope: ${message}`);
  }
}

const CALL_FIXED = 13;
const REPLY_FIXED = 8;

function clampTimeout(ms: number): number {
  if (!Number.isFinite(ms)) return 0xffffffff;
  return Math.min(0xffffffff, Math.max(1, Math.ceil(ms)));
}

export function encodeCallHeader(h: CallHeader): Buffer {
  const rid = Buffer.from(h.requestId, 'latin1');
  const model = Buffer.from(h.model, 'utf8');
  const version = Buffer.from(h.version, 'utf8');
  if (rid.length === 0 || rid.length > MAX_REQUEST_ID_BYTES) throw new EnvelopeError('request id must be 1-128 bytes');
  if (model.length > MAX_MODEL_NAME_BYTES || version.length > MAX_MODEL_NAME_BYTES) {
    throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `model name and version must be at most ${MAX_MODEL_NAME_BYTES} bytes`);
  }
  const out = Buffer.allocUnsafe(CALL_FIXED + rid.length + model.length + version.length);
  out[0] = ENVELOPE_VERSION;
  out[1] = h.method;
  out.writeUInt16BE(0, 2);
  out.writeUInt32BE(clampTimeout(h.timeoutMs), 4);
  out[8] = rid.length;
  out.writeUInt16BE(model.length, 9);
  out.writeUInt16BE(version.length, 11);
  let p = CALL_FIXED;
  p += rid.copy(out, p);
  p += model.copy(out, p);
  version.copy(out, p);
  return out;
}

export function decodeCall(body: Buffer): DecodedCall {
  if (body.length < CALL_FIXED) throw new EnvelopeError('call shorter than its fixed header');
  if (body[0] !== ENVELOPE_VERSION) throw new EnvelopeError(`unsupported version ${body[0]}`);
  const method = body[1]!;
  if (method !== 1 && method !== 2 && method !== 3) throw new EnvelopeError(`unknown method ${method}`);
  if (body.readUInt16BE(2) !== 0) throw new EnvelopeError('unknown flags');
  const timeoutMs = body.readUInt32BE(4);
  if (timeoutMs === 0) throw new EnvelopeError('timeout of 0');
  const ridLen = body[8]!;
  const modelLen = body.readUInt16BE(9);
  const versionLen = body.readUInt16BE(11);
  if (ridLen === 0 || ridLen > MAX_REQUEST_ID_BYTES) throw new EnvelopeError('request id length out of range');
  if (modelLen > MAX_MODEL_NAME_BYTES || versionLen > MAX_MODEL_NAME_BYTES) throw new EnvelopeError('model name too long');
  const end = CALL_FIXED + ridLen + modelLen + versionLen;
  if (end > body.length) throw new EnvelopeError('header runs past the message');
  let p = CALL_FIXED;
  const requestId = body.toString('latin1', p, p + ridLen);
  if (!isValidRequestId(requestId)) throw new EnvelopeError('invalid request id');
  p += ridLen;
  const model = body.toString('utf8', p, p + modelLen);
  p += modelLen;
  const version = body.toString('utf8', p, p + versionLen);
  return { method, timeoutMs, requestId, model, version, payload: body.subarray(end) };
}

export function encodeReplyHeader(h: ReplyHeader): Buffer {
  const rid = Buffer.from(h.requestId, 'latin1');
  const code = Buffer.from(h.code, 'latin1');
  let message = Buffer.from(h.message, 'utf8');
  if (message.length > MAX_ERROR_MESSAGE_BYTES) message = message.subarray(0, MAX_ERROR_MESSAGE_BYTES);
  if (rid.length === 0 || rid.length > MAX_REQUEST_ID_BYTES) throw new EnvelopeError('request id must be 1-128 bytes');
  if (code.length > 64) throw new EnvelopeError('error code too long');
  const out = Buffer.allocUnsafe(REPLY_FIXED + rid.length + code.length + message.length);
  out[0] = ENVELOPE_VERSION;
  out[1] = h.status;
  out[2] = rid.length;
  out[3] = code.length;
  out.writeUInt16BE(message.length, 4);
  out.writeUInt16BE(0, 6);
  let p = REPLY_FIXED;
  p += rid.copy(out, p);
  p += code.copy(out, p);
  message.copy(out, p);
  return out;
}

export function decodeReply(body: Buffer): DecodedReply {
  if (body.length < REPLY_FIXED) throw new EnvelopeError('reply shorter than its fixed header');
  if (body[0] !== ENVELOPE_VERSION) throw new EnvelopeError(`unsupported version ${body[0]}`);
  const status = body[1]!;
  if (!isGrpcStatusCode(status)) throw new EnvelopeError(`unknown status ${status}`);
  const ridLen = body[2]!;
  const codeLen = body[3]!;
  const msgLen = body.readUInt16BE(4);
  if (body.readUInt16BE(6) !== 0) throw new EnvelopeError('unknown flags');
  if (ridLen === 0 || ridLen > MAX_REQUEST_ID_BYTES) throw new EnvelopeError('request id length out of range');
  if (codeLen > 64 || msgLen > MAX_ERROR_MESSAGE_BYTES) throw new EnvelopeError('error text too long');
  const end = REPLY_FIXED + ridLen + codeLen + msgLen;
  if (end > body.length) throw new EnvelopeError('header runs past the message');
  let p = REPLY_FIXED;
  const requestId = body.toString('latin1', p, p + ridLen);
  if (!isValidRequestId(requestId)) throw new EnvelopeError('invalid request id');
  p += ridLen;
  const code = body.toString('latin1', p, p + codeLen);
  p += codeLen;
  const message = body.toString('utf8', p, p + msgLen);
  if (status === 0 ? code !== '' : !isInferenceErrorCode(code)) throw new EnvelopeError(`error code '${code.slice(0, 64)}' does not fit status ${status}`);
  return { status, code, message, requestId, payload: body.subarray(end) };
}

export function encodeCancel(reason: number): Buffer {
  return Buffer.from([ENVELOPE_VERSION, reason, 0, 0]);
}

export function decodeCancel(body: Buffer): number {
  if (body.length !== 4 || body[0] !== ENVELOPE_VERSION) throw new EnvelopeError('malformed cancel');
  const reason = body[1]!;
  if (reason !== CancelReason.CALLER && reason !== CancelReason.DEADLINE) throw new EnvelopeError(`unknown cancel reason ${reason}`);
  return reason;
}

/** Rebuilds the error a non-OK reply stands for, keeping the code and status from the egress. */
export function replyError(r: ReplyHeader): InferenceError {
  const code = isInferenceErrorCode(r.code) ? r.code : InferenceErrorCode.UPSTREAM_ERROR;
  return new InferenceError(code, r.message, { grpcStatus: r.status });
}
