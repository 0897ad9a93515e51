// Sends calls to egress peers over the inference segment and matches their replies. Each call
// gets a stream id on its link, a deadline timer (on expiry: DEADLINE_EXCEEDED to the caller
// and CANCEL to the egress, so nothing waits forever), and fails at once if its link closes.
// With an UpstreamPolicy, calls are admitted (or shed), the peer is chosen by P2C with outlier
// ejection, and a call that failed before reaching the model is retried on another peer.
import { isSluiceError } from '../errors.ts';
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { InboundMessage, Link, LinkCloseInfo } from '../transport/types.ts';
import { TransportErrorCode } from '../transport/errors.ts';
import { sendQuietly } from '../transport/send-quietly.ts';
import {
  CALL_METHOD_NAMES,
  CancelReason,
  type CallMethod,
  decodeReply,
  encodeCallHeader,
  encodeCancel,
  ENVELOPE_VERSION,
  type EnvelopeVersion,
  InferenceKind,
  peerHasMethod,
  replyError,
  replyFromV1Peer,
} from '../wire/inference-envelope.ts';
import type { PeerLinks } from './peer-links.ts';
import type { AttemptFailure, UpstreamPolicy } from './upstream-policy.ts';
import type { RequestContext } from './request-context.ts';

interface Pending {
  resolve(payload: Buffer): void;
  reject(err: InferenceError): void;
  timer: NodeJS.Timeout;
  ctx: RequestContext;
  /** Envelope version the CALL went out in. */
  envelopeVersion: EnvelopeVersion;
  /** Sends the call again as version 1 (when a v1 peer could not read it but could read that). */
  resendAsV1: (() => void) | undefined;
}

interface LinkCalls {
  pending: Map<number, Pending>;
  nextStream: number;
  peer: string;
  /** Envelope version the peer speaks, learned from its replies (undefined: not yet known). */
  peerVersion: EnvelopeVersion | undefined;
}

/** Failures known to have happened before the egress handed the request to a model server. */
const beforeModel = new WeakSet<InferenceError>();

function markBeforeModel(err: InferenceError): InferenceError {
  beforeModel.add(err);
  return err;
}

function classify(err: InferenceError): AttemptFailure {
  const phase = beforeModel.has(err) || err.code === InferenceErrorCode.UPSTREAM_UNAVAILABLE ? 'before-model' : 'at-model';
  const upstreamFault =
    err.code === InferenceErrorCode.PEER_UNAVAILABLE || err.code === InferenceErrorCode.UPSTREAM_UNAVAILABLE || err.code === InferenceErrorCode.DEADLINE_EXCEEDED || err.code === InferenceErrorCode.INTERNAL;
  return { phase, upstreamFault };
}

/** The client's own budget when it gave one (a 5 ms deadline reads "5 ms", not what was left at sending). */
function deadlineText(ctx: RequestContext): string {
  return `${ctx.timeoutMs ?? Math.round(ctx.deadline - (Date.now() - (performance.now() - ctx.startedAt)))} ms`;
}

function olderPeer(peer: string, method: string): InferenceError {
  return new InferenceError(InferenceErrorCode.NOT_IMPLEMENTED, `egress peer ${peer} runs an older sluice (inference envelope v1) that cannot forward ${method}`);
}

export class SegmentForwarder {
  private readonly links: PeerLinks;
  private readonly logger: Logger;
  private readonly policy: UpstreamPolicy | undefined;
  private readonly calls = new Map<Link, LinkCalls>();

  constructor(links: PeerLinks, logger: Logger, policy?: UpstreamPolicy) {
    this.links = links;
    this.logger = logger;
    this.policy = policy;
    links.on('link', (peer: string, link: Link) => this.adopt(peer, link));
  }

  get inflight(): number {
    let n = 0;
    for (const c of this.calls.values()) n += c.pending.size;
    return n;
  }

  private adopt(peer: string, link: Link): void {
    const state: LinkCalls = { pending: new Map(), nextStream: 1, peer, peerVersion: undefined };
    this.calls.set(link, state);
    link.on('message', (m: InboundMessage) => {
      if (m.cls === 'inference' && m.kind === InferenceKind.REPLY) this.onReply(state, m);
    });
    link.once('close', (info: LinkCloseInfo) => {
      this.calls.delete(link);
      const why = new InferenceError(
        InferenceErrorCode.PEER_UNAVAILABLE,
        `link to egress peer ${peer} closed before the reply (${info.by}: ${info.reason})`,
      );
      for (const p of state.pending.values()) {
        clearTimeout(p.timer);
        p.ctx.cancel = undefined;
        p.reject(why);
      }
      state.pending.clear();
    });
  }

  private onReply(state: LinkCalls, m: InboundMessage): void {
    const p = state.pending.get(m.streamId);
    if (p === undefined) return; // Late reply to a call that timed out or was cancelled.
    let reply;
    try {
      reply = decodeReply(m.body);
    } catch (err) {
      this.settle(state, m.streamId, p);
      this.logger.warn({ request_id: p.ctx.requestId, err: (err as Error).message }, 'malformed reply from egress');
      p.reject(err as InferenceError);
      return;
    }
    if (replyFromV1Peer(p.envelopeVersion, reply)) {
      if (state.peerVersion !== 1) this.logger.info({ peer: state.peer }, 'egress peer speaks inference envelope v1 (older sluice): no trace context, no ModelConfig/ModelStatistics/RepositoryIndex on this link');
      state.peerVersion = 1;
      // The v1 peer refused the call unread; the same stream can carry it again.
      if (p.resendAsV1 !== undefined) {
        p.envelopeVersion = 1;
        p.resendAsV1();
        return;
      }
      this.settle(state, m.streamId, p);
      p.reject(olderPeer(state.peer, p.ctx.method));
      return;
    }
    if (p.envelopeVersion === 2) state.peerVersion = 2;
    this.settle(state, m.streamId, p);
    if (reply.status === 0) p.resolve(reply.payload);
    else p.reject(replyError(reply));
  }

  private settle(state: LinkCalls, streamId: number, p: Pending): void {
    if (p.ctx.segment !== undefined) p.ctx.segment.repliedAt = performance.now();
    state.pending.delete(streamId);
    clearTimeout(p.timer);
    p.ctx.cancel = undefined;
  }

  private allocStream(state: LinkCalls): number {
    for (;;) {
      const id = state.nextStream;
      state.nextStream = id >= 0xffffffff ? 1 : id + 1;
      if (!state.pending.has(id)) return id;
    }
  }

  /**
   * Sends `payload` (a serialized gRPC request) to an egress peer of the route and resolves
   * with the serialized response. Sets ctx.cancel while the call is out.
   */
  call(ctx: RequestContext, method: CallMethod, payload: Buffer, peers: readonly string[]): Promise<Buffer> {
    const policy = this.policy;
    if (policy === undefined) {
      let picked: { name: string; link: Link };
      try {
        picked = this.links.pick(peers);
      } catch (err) {
        return Promise.reject(err);
      }
      return this.callOnce(ctx, method, payload, picked);
    }
    try {
      policy.admit(ctx.deadline - Date.now());
    } catch (err) {
      return Promise.reject(err);
    }
    return this.callWithPolicy(policy, ctx, method, payload, peers);
  }

  private async callWithPolicy(policy: UpstreamPolicy, ctx: RequestContext, method: CallMethod, payload: Buffer, peers: readonly string[]): Promise<Buffer> {
    const started = performance.now();
    const tried = new Set<string>();
    const allowed = (name: string) => peers.includes(name) && this.links.isUp(name);
    let answered = false;
    try {
      for (let attempt = 1; ; attempt++) {
        const lease = policy.pick(tried, allowed);
        // Nothing up: PeerLinks says why, peer by peer.
        const picked = lease === undefined ? this.links.pick(peers) : { name: lease.key, link: this.links.linkOf(lease.key) };
        const t0 = performance.now();
        try {
          const reply = await this.callOnce(ctx, method, payload, picked);
          lease?.done(true, performance.now() - t0, performance.now());
          answered = true;
          return reply;
        } catch (err) {
          const e = err instanceof InferenceError ? err : new InferenceError(InferenceErrorCode.INTERNAL, (err as Error).message, { cause: err });
          const failure = classify(e);
          const outcome = lease?.done(!failure.upstreamFault, failure.upstreamFault ? performance.now() - t0 : Number.NaN, performance.now());
          if (outcome === 'ejected') this.logger.warn({ peer: picked.name, err: e.message }, 'egress peer ejected after consecutive failures');
          tried.add(picked.name);
          if (!policy.retry(failure, attempt, ctx.deadline - Date.now())) throw e;
          this.logger.info({ request_id: ctx.requestId, peer: picked.name, attempt, err: e.message }, 'request retried on another egress peer');
        }
      }
    } finally {
      policy.release(performance.now() - started, answered);
    }
  }

  private callOnce(ctx: RequestContext, method: CallMethod, payload: Buffer, picked: { name: string; link: Link | undefined }): Promise<Buffer> {
    const remaining = ctx.deadline - Date.now();
    if (remaining <= 0) {
      return Promise.reject(new InferenceError(InferenceErrorCode.DEADLINE_EXCEEDED, 'the deadline passed before the request could be sent'));
    }
    if (picked.link === undefined || picked.link.closed) {
      return Promise.reject(markBeforeModel(new InferenceError(InferenceErrorCode.PEER_UNAVAILABLE, `link to egress peer ${picked.name} is down`)));
    }
    const link = picked.link;
    const state = this.calls.get(link);
    if (state === undefined) {
      return Promise.reject(markBeforeModel(new InferenceError(InferenceErrorCode.PEER_UNAVAILABLE, `link to egress peer ${picked.name} is not ready`)));
    }
    const peerVersion = state.peerVersion ?? ENVELOPE_VERSION;
    if (!peerHasMethod(method, peerVersion)) return Promise.reject(markBeforeModel(olderPeer(picked.name, CALL_METHOD_NAMES[method])));
    let header: Buffer;
    try {
      header = encodeCallHeader(
        { method, timeoutMs: remaining, requestId: ctx.requestId, model: ctx.model, version: ctx.version, traceparent: ctx.traceparent },
        peerVersion,
      );
    } catch (err) {
      return Promise.reject(err);
    }
    const envelopeVersion = header[0] as EnvelopeVersion;
    const streamId = this.allocStream(state);
    return new Promise<Buffer>((resolve, reject) => {
      const abandon = (reason: number, err: InferenceError): void => {
        const p = state.pending.get(streamId);
        if (p === undefined) return;
        this.settle(state, streamId, p);
        sendQuietly(link, { cls: 'inference', kind: InferenceKind.CANCEL, streamId, tenant: ctx.tenant, body: encodeCancel(reason, p.envelopeVersion) });
        reject(err);
      };
      const timer = setTimeout(
        () =>
          abandon(
            CancelReason.DEADLINE,
            new InferenceError(InferenceErrorCode.DEADLINE_EXCEEDED, `no answer from model '${ctx.model}' within the deadline of ${deadlineText(ctx)}`),
          ),
        remaining,
      );
      // A call that is version 2 only for its trace context can go again as version 1.
      const resendAsV1 =
        envelopeVersion === 2 && peerHasMethod(method, 1)
          ? () => {
              const v1 = encodeCallHeader({ method, timeoutMs: Math.max(1, ctx.deadline - Date.now()), requestId: ctx.requestId, model: ctx.model, version: ctx.version }, 1);
              sendQuietly(link, { cls: 'inference', kind: InferenceKind.CALL, streamId, tenant: ctx.tenant, body: [v1, payload] });
            }
          : undefined;
      state.pending.set(streamId, { resolve, reject, timer, ctx, envelopeVersion, resendAsV1 });
      ctx.cancel = () => abandon(CancelReason.CALLER, new InferenceError(InferenceErrorCode.CANCELLED, 'the client cancelled the request'));
      const now = performance.now();
      if (ctx.segment === undefined) ctx.segment = { peer: picked.name, attempts: 1, firstSentAt: now, sentAt: now, repliedAt: 0 };
      else {
        ctx.segment.peer = picked.name;
        ctx.segment.attempts++;
        ctx.segment.sentAt = now;
        ctx.segment.repliedAt = 0;
      }
      try {
        link.send({ cls: 'inference', kind: InferenceKind.CALL, streamId, tenant: ctx.tenant, body: [header, payload] });
      } catch (err) {
        // Closed under us, or refused (too big for the segment): fail this call now.
        state.pending.delete(streamId);
        clearTimeout(timer);
        ctx.cancel = undefined;
        const tooBig = isSluiceError(err, TransportErrorCode.MESSAGE_TOO_BIG);
        const e = new InferenceError(tooBig ? InferenceErrorCode.TOO_LARGE : InferenceErrorCode.PEER_UNAVAILABLE, `cannot send to egress peer ${picked.name}: ${(err as Error).message}`, {
          cause: err,
        });
        reject(tooBig ? e : markBeforeModel(e));
      }
    });
  }
}
