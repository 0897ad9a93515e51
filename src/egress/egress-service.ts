// The egress half of the inference path: takes CALL messages from links of the inference
// segment, calls the model server with the caller's deadline and request id, and sends the
// answer back as a REPLY on the same link and stream. CANCEL, or the link closing, stops the
// upstream call.
import { InferenceError, InferenceErrorCode, toInferenceError } from '../kserve/inference-error.ts';
import { GrpcStatus } from '../kserve/status.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { InboundMessage, Link } from '../transport/types.ts';
import { sendQuietly } from '../transport/send-quietly.ts';
import {
  CALL_METHOD_NAMES,
  decodeCall,
  decodeCancel,
  type DecodedCall,
  type EnvelopeVersion,
  encodeReplyHeader,
  InferenceKind,
} from '../wire/inference-envelope.ts';
import type { UpstreamCall } from './upstream-client.ts';
import type { MessageParts } from './http2-grpc-client.ts';
import type { UpstreamPool } from './upstream-pool.ts';

export interface EgressServiceOptions {
  upstreams: UpstreamPool;
  logger: Logger;
  /** Checks the frame's tenant against the model before calling upstream (security layer). */
  authorizeCall?: (tenantId: number, model: string, requestId: string) => InferenceError | null;
  /** Told of every call about to go to a model server (metrics, access log, traces). */
  observer?: EgressCallObserver;
}

/** A call from the segment about to go to a model server, as telemetry sees it (performance.now() ms). */
export interface EgressCallInfo {
  requestId: string;
  tenant: number;
  model: string;
  method: string;
  bytesIn: number;
  receivedAt: number;
  calledAt: number;
  /** The CALL's W3C traceparent, when the ingress sent one. */
  traceparent: string | undefined;
  /** The address of the ingress the CALL came from (its link's remote address). */
  peer?: string;
}

export interface EgressCallObservation {
  /** The traceparent to send the model server (the upstream span's), if any. */
  traceparent?: string;
  /** The call ended with this gRPC status and response size; `upstream`: the model server called, if one was. */
  end(status: number, bytesOut: number, upstream?: string): void;
}

export interface EgressCallObserver {
  begin(call: EgressCallInfo): EgressCallObservation;
}

interface LinkState {
  inflight: Map<number, UpstreamCall>;
}

export class EgressService {
  private readonly opts: EgressServiceOptions;
  private readonly links = new Map<Link, LinkState>();
  private closing = false;

  constructor(opts: EgressServiceOptions) {
    this.opts = opts;
  }

  /** Number of upstream calls in flight over every link. */
  get inflight(): number {
    let n = 0;
    for (const s of this.links.values()) n += s.inflight.size;
    return n;
  }

  attach(link: Link): void {
    const state: LinkState = { inflight: new Map() };
    this.links.set(link, state);
    link.on('message', (m: InboundMessage) => {
      if (m.cls !== 'inference') return;
      if (m.kind === InferenceKind.CALL) this.onCall(link, state, m);
      else if (m.kind === InferenceKind.CANCEL) this.onCancel(state, m);
    });
    link.once('close', () => {
      for (const c of state.inflight.values()) c.cancel();
      state.inflight.clear();
      this.links.delete(link);
    });
  }

  private onCall(link: Link, state: LinkState, m: InboundMessage): void {
    const receivedAt = performance.now();
    let call: DecodedCall;
    try {
      call = decodeCall(m.body);
    } catch (err) {
      this.opts.logger.warn({ err, link: link.id, stream: m.streamId }, 'dropping malformed inference call');
      // Answer in the version the call claimed if this node speaks it, so the ingress does not
      // mistake a malformed v2 call for a v1 peer.
      this.reply(link, m, 'invalid', toInferenceError(err), undefined, m.body[0] === 2 ? 2 : 1);
      return;
    }
    const v = call.envelopeVersion;
    if (this.closing) {
      this.reply(link, m, call.requestId, new InferenceError(InferenceErrorCode.UPSTREAM_UNAVAILABLE, 'egress is shutting down'), undefined, v);
      return;
    }
    const refused = this.opts.authorizeCall?.(m.tenant, call.model, call.requestId) ?? null;
    if (refused !== null) {
      this.reply(link, m, call.requestId, refused, undefined, v);
      return;
    }
    if (state.inflight.has(m.streamId)) {
      this.reply(link, m, call.requestId, new InferenceError(InferenceErrorCode.INTERNAL, `stream ${m.streamId} is already in use`), undefined, v);
      return;
    }
    let observation: EgressCallObservation | undefined;
    try {
      observation = this.opts.observer?.begin({
        requestId: call.requestId,
        tenant: m.tenant,
        model: call.model,
        method: CALL_METHOD_NAMES[call.method],
        bytesIn: call.payload.length,
        receivedAt,
        calledAt: performance.now(),
        traceparent: call.traceparent,
        peer: link.remoteAddress,
      });
    } catch {
      // Telemetry must never break the data path.
    }
    let upstream: UpstreamCall;
    let address: string | undefined;
    try {
      const client = this.opts.upstreams.pick(call.model);
      address = client.address;
      upstream = client.call(CALL_METHOD_NAMES[call.method], call.payload, {
        deadline: Date.now() + call.timeoutMs,
        requestId: call.requestId,
        traceparent: observation?.traceparent ?? call.traceparent,
      });
    } catch (err) {
      const e = toInferenceError(err);
      report(observation, e.grpcStatus, 0);
      this.reply(link, m, call.requestId, e, undefined, v);
      return;
    }
    state.inflight.set(m.streamId, upstream);
    upstream.result.then(
      (payload) => {
        report(observation, GrpcStatus.OK, payload.length, address);
        if (state.inflight.delete(m.streamId)) this.reply(link, m, call.requestId, undefined, payload, v);
      },
      (err: unknown) => {
        const e = toInferenceError(err);
        report(observation, e.grpcStatus, 0, address);
        if (!state.inflight.delete(m.streamId)) return;
        if (e.grpcStatus !== GrpcStatus.NOT_FOUND && e.grpcStatus !== GrpcStatus.INVALID_ARGUMENT) {
          this.opts.logger.info({ request_id: call.requestId, model: call.model, code: e.code, err: e.message }, 'upstream call failed');
        }
        this.reply(link, m, call.requestId, e, undefined, v);
      },
    );
  }

  private onCancel(state: LinkState, m: InboundMessage): void {
    try {
      decodeCancel(m.body);
    } catch {
      return;
    }
    const c = state.inflight.get(m.streamId);
    if (c !== undefined) {
      state.inflight.delete(m.streamId);
      c.cancel();
    }
  }

  /** `v`: the envelope version of the call answered (a v1 ingress must get a v1 reply). */
  private reply(link: Link, m: InboundMessage, requestId: string, err: InferenceError | undefined, payload: MessageParts | undefined, v: EnvelopeVersion): void {
    const header = encodeReplyHeader(
      err === undefined
        ? { status: GrpcStatus.OK, code: '', message: '', requestId }
        : { status: err.grpcStatus, code: err.code, message: err.message, requestId },
      v,
    );
    const msg = { cls: 'inference', kind: InferenceKind.REPLY, streamId: m.streamId, tenant: m.tenant } as const;
    if (payload === undefined) {
      sendQuietly(link, { ...msg, body: header });
      return;
    }
    try {
      link.send({ ...msg, body: [header, ...payload.parts] });
    } catch (err) {
      // The answer cannot cross (too big for the segment): tell the caller instead of going silent.
      const e = new InferenceError(InferenceErrorCode.TOO_LARGE, `the response of ${payload.length} bytes cannot cross the inference segment: ${(err as Error).message}`, {
        grpcStatus: GrpcStatus.RESOURCE_EXHAUSTED,
      });
      this.opts.logger.warn({ request_id: requestId, err: e.message }, 'reply not sent');
      sendQuietly(link, { ...msg, body: encodeReplyHeader({ status: e.grpcStatus, code: e.code, message: e.message, requestId }, v) });
    }
  }

  /** Refuses new calls; in-flight ones finish (the ops drain waits on `inflight`). */
  beginShutdown(): void {
    this.closing = true;
  }

  close(): void {
    this.closing = true;
    for (const s of this.links.values()) for (const c of s.inflight.values()) c.cancel();
    this.links.clear();
    this.opts.upstreams.close();
  }
}

function report(observation: EgressCallObservation | undefined, status: number, bytesOut: number, upstream?: string): void {
  try {
    observation?.end(status, bytesOut, upstream);
  } catch {
    // Telemetry must never break the data path.
  }
}
