// Calls across the inference segment on the TypeScript links of PeerLinks. Each call gets a
// stream id on its link, a deadline timer (on expiry: DEADLINE_EXCEEDED to the caller and
// CANCEL to the egress, so nothing waits forever), and fails at once if its link closes.
// (A node whose ingress runs on the native engine sends through the engine's links instead:
// src/engine/engine-segment-channel.ts.)
import type { Logger } from '../telemetry/logger.ts';
import type { InboundMessage, Link, LinkCloseInfo } from '../transport/types.ts';
import { sendQuietly } from '../transport/send-quietly.ts';
import type { InferenceError } from '../kserve/inference-error.ts';
import { CancelReason, type CallMethod, encodeCancel, type EnvelopeVersion, InferenceKind } from '../wire/inference-envelope.ts';
import type { PeerLinks } from './peer-links.ts';
import type { RequestContext } from './request-context.ts';
import {
  cancelledError,
  deadlineError,
  linkClosedError,
  linkDownError,
  noteReplied,
  noteSent,
  prepareCall,
  readReply,
  type SegmentChannel,
  sendFailedError,
} from './segment-call.ts';

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

/** The structural part of PeerLinks this channel uses (tests pass their own). */
type LinkSource = Pick<PeerLinks, 'pick' | 'isUp' | 'linkOf' | 'on'>;

export class LinkSegmentChannel implements SegmentChannel {
  private readonly links: LinkSource;
  private readonly logger: Logger;
  private readonly calls = new Map<Link, LinkCalls>();

  constructor(links: LinkSource, logger: Logger) {
    this.links = links;
    this.logger = logger;
    links.on('link', (peer: string, link: Link) => this.adopt(peer, link));
  }

  get inflight(): number {
    let n = 0;
    for (const c of this.calls.values()) n += c.pending.size;
    return n;
  }

  isUp(name: string): boolean {
    return this.links.isUp(name);
  }

  pick(names: readonly string[]): string {
    return this.links.pick(names).name;
  }

  private adopt(peer: string, link: Link): void {
    const state: LinkCalls = { pending: new Map(), nextStream: 1, peer, peerVersion: undefined };
    this.calls.set(link, state);
    link.on('message', (m: InboundMessage) => {
      if (m.cls === 'inference' && m.kind === InferenceKind.REPLY) this.onReply(state, m);
    });
    link.once('close', (info: LinkCloseInfo) => {
      this.calls.delete(link);
      const why = linkClosedError(peer, info.by, info.reason);
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
    const out = readReply(m.body, p.envelopeVersion, p.resendAsV1 !== undefined, state.peer, p.ctx.method);
    if (out.kind === 'resend-v1' || out.peerVersion === 1) {
      if (state.peerVersion !== 1) this.logger.info({ peer: state.peer }, 'egress peer speaks inference envelope v1 (older sluice): no trace context, no ModelConfig/ModelStatistics/RepositoryIndex on this link');
      state.peerVersion = 1;
    } else if (out.peerVersion === 2) state.peerVersion = 2;
    if (out.kind === 'resend-v1') {
      p.envelopeVersion = 1;
      p.resendAsV1!();
      return;
    }
    this.settle(state, m.streamId, p);
    if (out.kind === 'ok') p.resolve(out.payload);
    else {
      if (out.malformed === true) this.logger.warn({ request_id: p.ctx.requestId, err: out.error.message }, 'malformed reply from egress');
      p.reject(out.error);
    }
  }

  private settle(state: LinkCalls, streamId: number, p: Pending): void {
    noteReplied(p.ctx);
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

  callOnce(ctx: RequestContext, method: CallMethod, payload: Buffer, peer: string): Promise<Buffer> {
    const link = this.links.linkOf(peer);
    const state = link === undefined ? undefined : this.calls.get(link);
    // A passed deadline is said as such (prepareCall), before whether the link is up.
    if (ctx.deadline > Date.now()) {
      if (link === undefined || link.closed) return Promise.reject(linkDownError(peer, 'is down'));
      if (state === undefined) return Promise.reject(linkDownError(peer, 'is not ready'));
    }
    const prepared = prepareCall(ctx, method, peer, state?.peerVersion);
    if (!('header' in prepared)) return Promise.reject(prepared);
    const { header, envelopeVersion, v1Header } = prepared;
    const l = link!;
    const s = state!;
    const streamId = this.allocStream(s);
    return new Promise<Buffer>((resolve, reject) => {
      const abandon = (reason: number, err: InferenceError): void => {
        const p = s.pending.get(streamId);
        if (p === undefined) return;
        this.settle(s, streamId, p);
        sendQuietly(l, { cls: 'inference', kind: InferenceKind.CANCEL, streamId, tenant: ctx.tenant, body: encodeCancel(reason, p.envelopeVersion) });
        reject(err);
      };
      const timer = setTimeout(() => abandon(CancelReason.DEADLINE, deadlineError(ctx)), ctx.deadline - Date.now());
      const resendAsV1 = v1Header === undefined ? undefined : () => sendQuietly(l, { cls: 'inference', kind: InferenceKind.CALL, streamId, tenant: ctx.tenant, body: [v1Header(), payload] });
      s.pending.set(streamId, { resolve, reject, timer, ctx, envelopeVersion, resendAsV1 });
      ctx.cancel = () => abandon(CancelReason.CALLER, cancelledError());
      noteSent(ctx, peer);
      try {
        l.send({ cls: 'inference', kind: InferenceKind.CALL, streamId, tenant: ctx.tenant, body: [header, payload] });
      } catch (err) {
        // Closed under us, or refused (too big for the segment): fail this call now.
        s.pending.delete(streamId);
        clearTimeout(timer);
        ctx.cancel = undefined;
        reject(sendFailedError(peer, err));
      }
    });
  }
}
