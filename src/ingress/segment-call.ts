// What every way of sending a call across the inference segment shares (the TypeScript links of
// link-segment-channel.ts, the native engine's links of src/engine/engine-segment-channel.ts):
// the CALL header, reading the REPLY (including the v1-peer fallback), the errors a caller sees
// and the classification the upstream policy retries on.
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';
import { isSluiceError } from '../errors.ts';
import { TransportErrorCode } from '../transport/errors.ts';
import {
  CALL_METHOD_NAMES,
  type CallMethod,
  decodeReply,
  encodeCallHeader,
  ENVELOPE_VERSION,
  type EnvelopeVersion,
  peerHasMethod,
  replyError,
  replyFromV1Peer,
} from '../wire/inference-envelope.ts';
import type { AttemptFailure } from './upstream-policy.ts';
import type { RequestContext } from './request-context.ts';

/** One egress peer's way across the segment: the SegmentForwarder picks peers and retries over it. */
export interface SegmentChannel {
  /** Calls out now. */
  readonly inflight: number;
  isUp(name: string): boolean;
  /** A live peer of `names` (round robin); PEER_UNAVAILABLE saying why, peer by peer, when none is. */
  pick(names: readonly string[]): string;
  /** One attempt on one peer; sets ctx.cancel while the call is out. */
  callOnce(ctx: RequestContext, method: CallMethod, payload: Buffer, peer: string): Promise<Buffer>;
}

/** Failures known to have happened before the egress handed the request to a model server. */
const beforeModel = new WeakSet<InferenceError>();

export function markBeforeModel(err: InferenceError): InferenceError {
  beforeModel.add(err);
  return err;
}

export function classifyFailure(err: InferenceError): AttemptFailure {
  const phase = beforeModel.has(err) || err.code === InferenceErrorCode.UPSTREAM_UNAVAILABLE ? 'before-model' : 'at-model';
  const upstreamFault =
    err.code === InferenceErrorCode.PEER_UNAVAILABLE || err.code === InferenceErrorCode.UPSTREAM_UNAVAILABLE || err.code === InferenceErrorCode.DEADLINE_EXCEEDED || err.code === InferenceErrorCode.INTERNAL;
  return { phase, upstreamFault };
}

/** The client's own budget when it gave one (a 5 ms deadline reads "5 ms", not what was left at sending). */
function deadlineText(ctx: RequestContext): string {
  return `${ctx.timeoutMs ?? Math.round(ctx.deadline - (Date.now() - (performance.now() - ctx.startedAt)))} ms`;
}

export function olderPeer(peer: string, method: string): InferenceError {
  return new InferenceError(InferenceErrorCode.NOT_IMPLEMENTED, `egress peer ${peer} runs an older sluice (inference envelope v1) that cannot forward ${method}`);
}

export function deadlineError(ctx: RequestContext): InferenceError {
  return new InferenceError(InferenceErrorCode.DEADLINE_EXCEEDED, `no answer from model '${ctx.model}' within the deadline of ${deadlineText(ctx)}`);
}

export function cancelledError(): InferenceError {
  return new InferenceError(InferenceErrorCode.CANCELLED, 'the client cancelled the request');
}

export function linkClosedError(peer: string, by: string, reason: string): InferenceError {
  return new InferenceError(InferenceErrorCode.PEER_UNAVAILABLE, `link to egress peer ${peer} closed before the reply (${by}: ${reason})`);
}

/** No peer of a route has a live link: PEER_UNAVAILABLE saying why, peer by peer. */
export function noLiveLinkError(names: readonly string[], lastError: (name: string) => string | undefined): InferenceError {
  const why = names.map((nm) => `${nm}: ${lastError(nm) ?? 'unknown peer'}`).join('; ');
  return new InferenceError(InferenceErrorCode.PEER_UNAVAILABLE, `no live link to egress peer${names.length > 1 ? 's' : ''} (${why})`);
}

export function linkDownError(peer: string, why: 'is down' | 'is not ready'): InferenceError {
  return markBeforeModel(new InferenceError(InferenceErrorCode.PEER_UNAVAILABLE, `link to egress peer ${peer} ${why}`));
}

/** A send the link refused: too big for the segment (TOO_LARGE) or closed under us (before the model). */
export function sendFailedError(peer: string, err: unknown): InferenceError {
  const tooBig = isSluiceError(err, TransportErrorCode.MESSAGE_TOO_BIG);
  const e = new InferenceError(tooBig ? InferenceErrorCode.TOO_LARGE : InferenceErrorCode.PEER_UNAVAILABLE, `cannot send to egress peer ${peer}: ${(err as Error).message}`, {
    cause: err,
  });
  return tooBig ? e : markBeforeModel(e);
}

/** A CALL ready to send: the header (the payload follows it), or the error that stops it before sending. */
export interface PreparedCall {
  header: Buffer;
  envelopeVersion: EnvelopeVersion;
  /** The header again as version 1 when a v1 peer refused the v2 one unread (only for v1 methods). */
  v1Header: (() => Buffer) | undefined;
}

/** The CALL header for a call to a peer speaking `peerVersion` (undefined: not known yet). */
export function prepareCall(ctx: RequestContext, method: CallMethod, peer: string, peerVersion: EnvelopeVersion | undefined): PreparedCall | InferenceError {
  const remaining = ctx.deadline - Date.now();
  if (remaining <= 0) return new InferenceError(InferenceErrorCode.DEADLINE_EXCEEDED, 'the deadline passed before the request could be sent');
  const version = peerVersion ?? ENVELOPE_VERSION;
  if (!peerHasMethod(method, version)) return markBeforeModel(olderPeer(peer, CALL_METHOD_NAMES[method]));
  let header: Buffer;
  try {
    header = encodeCallHeader({ method, timeoutMs: remaining, requestId: ctx.requestId, model: ctx.model, version: ctx.version, traceparent: ctx.traceparent }, version);
  } catch (err) {
    return err as InferenceError;
  }
  const envelopeVersion = header[0] as EnvelopeVersion;
  // A call that is version 2 only for its trace context can go again as version 1.
  const v1Header =
    envelopeVersion === 2 && peerHasMethod(method, 1)
      ? () => encodeCallHeader({ method, timeoutMs: Math.max(1, ctx.deadline - Date.now()), requestId: ctx.requestId, model: ctx.model, version: ctx.version }, 1)
      : undefined;
  return { header, envelopeVersion, v1Header };
}

/** What a REPLY means for the call: its answer, its error, or "send it again as version 1". */
export type ReplyOutcome =
  | { kind: 'ok'; payload: Buffer; peerVersion: EnvelopeVersion | undefined }
  | { kind: 'error'; error: InferenceError; peerVersion: EnvelopeVersion | undefined; malformed?: boolean }
  | { kind: 'resend-v1' };

export function readReply(body: Buffer, envelopeVersion: EnvelopeVersion, canResendV1: boolean, peer: string, method: string): ReplyOutcome {
  let reply;
  try {
    reply = decodeReply(body);
  } catch (err) {
    return { kind: 'error', error: err as InferenceError, peerVersion: undefined, malformed: true };
  }
  if (replyFromV1Peer(envelopeVersion, reply)) {
    // The v1 peer refused the call unread; the same stream can carry it again.
    if (canResendV1) return { kind: 'resend-v1' };
    return { kind: 'error', error: olderPeer(peer, method), peerVersion: 1 };
  }
  const peerVersion = envelopeVersion === 2 ? 2 : undefined;
  if (reply.status === 0) return { kind: 'ok', payload: reply.payload, peerVersion };
  return { kind: 'error', error: replyError(reply), peerVersion };
}

/** Notes the trip on ctx.segment (the access log and traces read it). */
export function noteSent(ctx: RequestContext, peer: string): void {
  const now = performance.now();
  if (ctx.segment === undefined) ctx.segment = { peer, attempts: 1, firstSentAt: now, sentAt: now, repliedAt: 0 };
  else {
    ctx.segment.peer = peer;
    ctx.segment.attempts++;
    ctx.segment.sentAt = now;
    ctx.segment.repliedAt = 0;
  }
}

export function noteReplied(ctx: RequestContext): void {
  if (ctx.segment !== undefined) ctx.segment.repliedAt = performance.now();
}
