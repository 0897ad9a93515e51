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

/**
 * Newest envelope version this node speaks. Version 2 only adds to version 1 (methods 4-6 and
 * the trace context); a call that needs neither is still written as version 1, byte for byte,
 * so a v1 peer understands it. REPLY and CANCEL have the same layout in both versions and carry
 * the version of the CALL they belong to (docs/wire.md, section 5).
 */
export const ENVELOPE_VERSION = 2;
export type EnvelopeVersion = 1 | 2;

/** The gRPC method an inference call invokes on the model server. */
export const CallMethod = { ModelInfer: 1, ModelReady: 2, ModelMetadata: 3, ModelConfig: 4, ModelStatistics: 5, RepositoryIndex: 6 } as const;
export type CallMethod = (typeof CallMethod)[keyof typeof CallMethod];
export type CallMethodName = keyof typeof CallMethod;
export const CALL_METHOD_NAMES: Record<CallMethod, CallMethodName> = {
  1: 'ModelInfer',
  2: 'ModelReady',
  3: 'ModelMetadata',
  4: 'ModelConfig',
  5: 'ModelStatistics',
  6: 'RepositoryIndex',
};
/** The first envelope version that has each method. */
const METHOD_SINCE: Record<CallMethod, EnvelopeVersion> = { 1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 2 };

/** CALL flag bits (u16 at offset 2). Version 1 has none. */
export const CallFlag = { TRACE_CONTEXT: 0x0001 } as const;
/** Bytes of the binary trace context: version u8 (0), trace id 16, parent id 8, trace flags u8. */
export const TRACE_CONTEXT_BYTES = 26;
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-[^]*)?$/;

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
  /**
   * W3C traceparent of the caller's span (`00-<32 hex>-<16 hex>-<2 hex>`), carried as 26 binary
   * bytes (envelope v2). Undefined or invalid: no trace context travels.
   */
  traceparent?: string | undefined;
}

export interface DecodedCall extends CallHeader {
  /** Envelope version the call was written with; the REPLY and CANCEL use the same. */
  envelopeVersion: EnvelopeVersion;
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
  envelopeVersion: EnvelopeVersion;
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

/** The 26-byte binary trace context of a valid traceparent header, or undefined. */
export function traceContextBytes(traceparent: string | undefined): Buffer | undefined {
  if (traceparent === undefined) return undefined;
  const m = TRACEPARENT.exec(traceparent.trim());
  if (m === null) return undefined;
  const [all, version, traceId, parentId, flags] = m;
  // A version-00 header has exactly 55 characters; a later version may append fields, of which
  // the first four keep their meaning (W3C Trace Context, "Versioning of traceparent").
  if (version === 'ff' || (version === '00' && all!.length !== 55)) return undefined;
  if (/^0+$/.test(traceId!) || /^0+$/.test(parentId!)) return undefined;
  const out = Buffer.allocUnsafe(TRACE_CONTEXT_BYTES);
  out[0] = 0;
  out.write(traceId!, 1, 'hex');
  out.write(parentId!, 17, 'hex');
  out[25] = parseInt(flags!, 16);
  return out;
}

function traceparentFrom(body: Buffer, p: number): string {
  if (body[p] !== 0) throw new EnvelopeError(`unknown trace context version ${body[p]}`);
  const traceId = body.toString('hex', p + 1, p + 17);
  const parentId = body.toString('hex', p + 17, p + 25);
  if (/^0+$/.test(traceId) || /^0+$/.test(parentId)) throw new EnvelopeError('all-zero trace or parent id');
  return `00-${traceId}-${parentId}-${body.toString('hex', p + 25, p + 26)}`;
}

/** The envelope version a call needs: 1 unless it uses a v2 method or carries a trace context. */
export function callVersion(method: CallMethod, withTraceContext: boolean): EnvelopeVersion {
  return withTraceContext || METHOD_SINCE[method] === 2 ? 2 : 1;
}

/** Whether a peer that speaks `peerVersion` can take the method at all. */
export function peerHasMethod(method: CallMethod, peerVersion: EnvelopeVersion): boolean {
  return METHOD_SINCE[method] <= peerVersion;
}

/**
 * Encodes a CALL header at the lowest version that expresses it (1 when the method is a v1
 * method and no valid traceparent is given). `maxVersion` 1 (a peer known to speak only v1)
 * drops the trace context; a v2 method then cannot be encoded.
 */
export function encodeCallHeader(h: CallHeader, maxVersion: EnvelopeVersion = ENVELOPE_VERSION): Buffer {
  const trace = maxVersion >= 2 ? traceContextBytes(h.traceparent) : undefined;
  const envelopeVersion = callVersion(h.method, trace !== undefined);
  if (envelopeVersion > maxVersion) throw new EnvelopeError(`${CALL_METHOD_NAMES[h.method]} needs envelope version ${envelopeVersion}`);
  const rid = Buffer.from(h.requestId, 'latin1');
  const model = Buffer.from(h.model, 'utf8');
  const version = Buffer.from(h.version, 'utf8');
  if (rid.length === 0 || rid.length > MAX_REQUEST_ID_BYTES) throw new EnvelopeError('request id must be 1-128 bytes');
  if (model.length > MAX_MODEL_NAME_BYTES || version.length > MAX_MODEL_NAME_BYTES) {
    throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `model name and version must be at most ${MAX_MODEL_NAME_BYTES} bytes`);
  }
  const out = Buffer.allocUnsafe(CALL_FIXED + rid.length + model.length + version.length + (trace === undefined ? 0 : TRACE_CONTEXT_BYTES));
  out[0] = envelopeVersion;
  out[1] = h.method;
  out.writeUInt16BE(trace === undefined ? 0 : CallFlag.TRACE_CONTEXT, 2);
  out.writeUInt32BE(clampTimeout(h.timeoutMs), 4);
  out[8] = rid.length;
  out.writeUInt16BE(model.length, 9);
  out.writeUInt16BE(version.length, 11);
  let p = CALL_FIXED;
  p += rid.copy(out, p);
  p += model.copy(out, p);
  p += version.copy(out, p);
  if (trace !== undefined) trace.copy(out, p);
  return out;
}

function envelopeVersionOf(body: Buffer): EnvelopeVersion {
  const v = body[0];
  if (v !== 1 && v !== 2) throw new EnvelopeError(`unsupported version ${v}`);
  return v;
}

export function decodeCall(body: Buffer): DecodedCall {
  if (body.length < CALL_FIXED) throw new EnvelopeError('call shorter than its fixed header');
  const envelopeVersion = envelopeVersionOf(body);
  const method = body[1]!;
  if (!(method >= 1 && method <= 6) || METHOD_SINCE[method as CallMethod] > envelopeVersion) throw new EnvelopeError(`unknown method ${method}`);
  const flags = body.readUInt16BE(2);
  if ((flags & ~(envelopeVersion >= 2 ? CallFlag.TRACE_CONTEXT : 0)) !== 0) throw new EnvelopeError('unknown flags');
  const traceLen = (flags & CallFlag.TRACE_CONTEXT) !== 0 ? TRACE_CONTEXT_BYTES : 0;
  const timeoutMs = body.readUInt32BE(4);
  if (timeoutMs === 0) throw new EnvelopeError('timeout of 0');
  const ridLen = body[8]!;
  const modelLen = body.readUInt16BE(9);
  const versionLen = body.readUInt16BE(11);
  if (ridLen === 0 || ridLen > MAX_REQUEST_ID_BYTES) throw new EnvelopeError('request id length out of range');
  if (modelLen > MAX_MODEL_NAME_BYTES || versionLen > MAX_MODEL_NAME_BYTES) throw new EnvelopeError('model name too long');
  const end = CALL_FIXED + ridLen + modelLen + versionLen + traceLen;
  if (end > body.length) throw new EnvelopeError('header runs past the message');
  let p = CALL_FIXED;
  const requestId = body.toString('latin1', p, p + ridLen);
  if (!isValidRequestId(requestId)) throw new EnvelopeError('invalid request id');
  p += ridLen;
  const model = body.toString('utf8', p, p + modelLen);
  p += modelLen;
  const version = body.toString('utf8', p, p + versionLen);
  p += versionLen;
  const traceparent = traceLen === 0 ? undefined : traceparentFrom(body, p);
  return { envelopeVersion, method: method as CallMethod, timeoutMs, requestId, model, version, traceparent, payload: body.subarray(end) };
}

/** `envelopeVersion`: that of the CALL answered (1 for a call too malformed to tell). */
export function encodeReplyHeader(h: ReplyHeader, envelopeVersion: EnvelopeVersion = 1): Buffer {
  const rid = Buffer.from(h.requestId, 'latin1');
  const code = Buffer.from(h.code, 'latin1');
  let message = Buffer.from(h.message, 'utf8');
  if (message.length > MAX_ERROR_MESSAGE_BYTES) message = message.subarray(0, MAX_ERROR_MESSAGE_BYTES);
  if (rid.length === 0 || rid.length > MAX_REQUEST_ID_BYTES) throw new EnvelopeError('request id must be 1-128 bytes');
  if (code.length > 64) throw new EnvelopeError('error code too long');
  const out = Buffer.allocUnsafe(REPLY_FIXED + rid.length + code.length + message.length);
  out[0] = envelopeVersion;
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
  const envelopeVersion = envelopeVersionOf(body);
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
  return { envelopeVersion, status, code, message, requestId, payload: body.subarray(end) };
}

/** `envelopeVersion`: that of the CALL cancelled. */
export function encodeCancel(reason: number, envelopeVersion: EnvelopeVersion = 1): Buffer {
  return Buffer.from([envelopeVersion, reason, 0, 0]);
}

export function decodeCancel(body: Buffer): number {
  if (body.length !== 4 || (body[0] !== 1 && body[0] !== 2)) throw new EnvelopeError('malformed cancel');
  const reason = body[1]!;
  if (reason !== CancelReason.CALLER && reason !== CancelReason.DEADLINE) throw new EnvelopeError(`unknown cancel reason ${reason}`);
  return reason;
}

/**
 * Whether a REPLY says its peer speaks only version 1: the answer to a v2 CALL came back as
 * version 1, which a v2 egress never writes (it answers in the CALL's version), while a v1
 * egress answers every CALL it cannot read with a version-1 INTERNAL reply.
 */
export function replyFromV1Peer(callVersion: EnvelopeVersion, reply: DecodedReply): boolean {
  return callVersion === 2 && reply.envelopeVersion === 1;
}

/** Rebuilds the error a non-OK reply stands for, keeping the code and status from the egress. */
export function replyError(r: ReplyHeader): InferenceError {
  const code = isInferenceErrorCode(r.code) ? r.code : InferenceErrorCode.UPSTREAM_ERROR;
  return new InferenceError(code, r.message, { grpcStatus: r.status });
}
