// The protocol-independent core of the ingress: every request, whatever protocol it came in
// on, runs the hooks, is routed by model name and crosses the inference segment here, and is
// reported (logs, response hooks) once answered.
import { InferenceError, InferenceErrorCode, toInferenceError } from '../kserve/inference-error.ts';
import { GrpcStatus } from '../kserve/status.ts';
import type { Logger } from '../telemetry/logger.ts';
import { CallMethod } from '../wire/inference-envelope.ts';
import type { HookChain } from './hooks.ts';
import type { PayloadStage } from './payload-stage.ts';
import { type IngressMethod, type IngressProtocol, newRequestContext, type RequestContext, type RequestHeaders } from './request-context.ts';
import type { RouteTable } from './route-table.ts';
import type { SegmentForwarder } from './segment-forwarder.ts';
import { mergeServerWide, type PeerAnswer, type ServerWideMethod } from './server-wide.ts';

export interface GatewayOptions {
  routes: RouteTable;
  forwarder: SegmentForwarder;
  hooks: HookChain;
  logger: Logger;
  /** Requests without a deadline of their own get this one. */
  defaultTimeoutMs: number;
  /** Readiness of the node (the ops layer may replace it). */
  isReady?: () => boolean;
  /** Rewrites ModelInfer payloads of the calls it wants (the PII policy); absent: none. */
  stage?: PayloadStage;
  /** Sees each ModelInfer payload that passed the hooks (the threat detectors' sampled tap); must not throw or wait. */
  tap?: (ctx: RequestContext, payload: Buffer) => void;
}

/** Triton's extension names for what sluice serves (model_repository: the index only, no load/unload). */
export const SERVER_EXTENSIONS = ['binary_tensor_data', 'model_configuration', 'model_repository', 'statistics', 'sluice_segment_forwarding'];

export class InferenceGateway {
  readonly defaultTimeoutMs: number;
  private readonly opts: GatewayOptions;
  private draining = false;

  constructor(opts: GatewayOptions) {
    this.opts = opts;
    this.defaultTimeoutMs = opts.defaultTimeoutMs;
  }

  get hooks(): HookChain {
    return this.opts.hooks;
  }

  get wantsHeaders(): boolean {
    return this.opts.hooks.wantsHeaders;
  }

  ready(): boolean {
    return !this.draining && (this.opts.isReady?.() ?? true);
  }

  /** New requests get UNAVAILABLE from now on; those in flight finish. */
  beginDrain(): void {
    this.draining = true;
  }

  get inflight(): number {
    return this.opts.forwarder.inflight;
  }

  /** Deadline for a request whose client asked for `timeoutMs` (undefined: none given). */
  deadlineFor(timeoutMs: number | undefined): number {
    return Date.now() + (timeoutMs !== undefined && timeoutMs >= 0 ? timeoutMs : this.defaultTimeoutMs);
  }

  /** Hooks, routing and the trip across the segment; resolves with the serialized response. */
  forward(ctx: RequestContext, method: CallMethod, payload: Buffer): Promise<Buffer> {
    if (this.draining) {
      return Promise.reject(new InferenceError(InferenceErrorCode.PEER_UNAVAILABLE, 'this sluice is shutting down'));
    }
    let hooked: void | Promise<void>;
    try {
      hooked = this.opts.hooks.runRequest(ctx);
    } catch (err) {
      return Promise.reject(toInferenceError(err));
    }
    if (hooked instanceof Promise) return hooked.then(() => this.sendStaged(ctx, method, payload));
    return this.sendStaged(ctx, method, payload);
  }

  /** The payload stage's slow path, for the ModelInfer calls it wants; the others go straight on. */
  private sendStaged(ctx: RequestContext, method: CallMethod, payload: Buffer): Promise<Buffer> {
    if (method === CallMethod.ModelInfer) this.opts.tap?.(ctx, payload);
    const stage = this.opts.stage;
    if (stage === undefined || method !== CallMethod.ModelInfer || !stage.wants(ctx)) return this.sendCommitted(ctx, method, payload);
    let staged: Buffer | Promise<Buffer>;
    try {
      staged = stage.request(ctx, payload);
    } catch (err) {
      return Promise.reject(toInferenceError(err));
    }
    return Promise.resolve(staged)
      .then((req) => this.sendCommitted(ctx, method, req))
      .then((res) => stage.response(ctx, res));
  }

  /**
   * A server-wide call (RepositoryIndex; ModelStatistics of every model): one call to each egress
   * peer a route names, the answers merged, keeping of each peer only the models the route table
   * sends to it. Peers that fail are left out; if all fail, the first failure is the answer.
   */
  forwardToAll(ctx: RequestContext, method: ServerWideMethod, payload: Buffer): Promise<Buffer> {
    if (this.draining) {
      return Promise.reject(new InferenceError(InferenceErrorCode.PEER_UNAVAILABLE, 'this sluice is shutting down'));
    }
    let hooked: void | Promise<void>;
    try {
      hooked = this.opts.hooks.runRequest(ctx);
    } catch (err) {
      return Promise.reject(toInferenceError(err));
    }
    const send = (): Promise<Buffer> => {
      const answer = this.sendToAll(ctx, method, payload);
      return ctx.commit === undefined ? answer : Promise.all([answer, ctx.commit]).then(([res]) => res);
    };
    return hooked instanceof Promise ? hooked.then(send) : send();
  }

  private async sendToAll(ctx: RequestContext, method: ServerWideMethod, payload: Buffer): Promise<Buffer> {
    const routes = this.opts.routes;
    const peers = routes.allPeers();
    // Each peer's call gets a context of its own (the forwarder sets `cancel` on it).
    const calls = peers.map((peer) => ({ peer, ctx: { ...ctx, cancel: undefined, commit: undefined } as RequestContext }));
    ctx.cancel = () => {
      for (const c of calls) c.ctx.cancel?.();
    };
    const settled = await Promise.allSettled(calls.map((c) => this.opts.forwarder.call(c.ctx, CallMethod[method], payload, [c.peer])));
    ctx.cancel = undefined;
    const answers: PeerAnswer[] = [];
    let firstError: unknown;
    settled.forEach((r, i) => {
      if (r.status === 'fulfilled') answers.push({ peer: calls[i]!.peer, payload: r.value });
      else {
        firstError ??= r.reason;
        this.opts.logger.info({ request_id: ctx.requestId, peer: calls[i]!.peer, method, err: toInferenceError(r.reason).message }, 'egress peer left out of a server-wide answer');
      }
    });
    if (answers.length === 0 && firstError !== undefined) throw toInferenceError(firstError);
    return mergeServerWide(method, answers, (model, peer) => routes.routesTo(model, peer));
  }

  /** The answer, released only once the request's commit (if a hook set one) has resolved. */
  private sendCommitted(ctx: RequestContext, method: CallMethod, payload: Buffer): Promise<Buffer> {
    const answer = this.send(ctx, method, payload);
    if (ctx.commit === undefined) return answer;
    return Promise.all([answer, ctx.commit]).then(([res]) => res);
  }

  private send(ctx: RequestContext, method: CallMethod, payload: Buffer): Promise<Buffer> {
    let peers: readonly string[];
    try {
      peers = this.opts.routes.peersFor(ctx.model);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.opts.forwarder.call(ctx, method, payload, peers);
  }

  /**
   * Reports a request refused before it had a context (unreadable or invalid input), so logs and
   * response hooks (metrics) see every request, not only those that were routed.
   */
  refused(fields: { requestId: string; protocol: IngressProtocol; method: IngressMethod; model: string; headers: RequestHeaders; requestBytes: number }, error: InferenceError): void {
    const ctx = newRequestContext({ ...fields, version: '', deadline: Date.now() });
    this.finish(ctx, error, 0, 'request refused');
  }

  /** Logs the outcome and runs the response hooks. */
  finish(ctx: RequestContext, error: InferenceError | undefined, responseBytes: number, failedMsg = 'request failed'): void {
    const durationMs = performance.now() - ctx.startedAt;
    const status = error === undefined ? GrpcStatus.OK : error.grpcStatus;
    const log = this.opts.logger;
    if (error !== undefined) {
      const level = error.code === InferenceErrorCode.INTERNAL ? 'error' : 'info';
      log[level](
        {
          request_id: ctx.requestId,
          protocol: ctx.protocol,
          method: ctx.method,
          model: ctx.model,
          tenant: ctx.tenant,
          code: error.code,
          // What the client saw: the HTTP status over HTTP and WebSocket, the gRPC status over gRPC.
          ...(ctx.protocol === 'grpc' ? { grpc_status: status } : { status: error.httpStatus, grpc_status: status }),
          duration_ms: Math.round(durationMs * 1000) / 1000,
          err: error.message,
        },
        failedMsg,
      );
    } else if (log.isLevelEnabled('debug')) {
      log.debug(
        { request_id: ctx.requestId, protocol: ctx.protocol, method: ctx.method, model: ctx.model, tenant: ctx.tenant, bytes_in: ctx.requestBytes, bytes_out: responseBytes, duration_ms: Math.round(durationMs * 1000) / 1000 },
        'request done',
      );
    }
    this.opts.hooks.runResponse(ctx, { status, error, responseBytes, durationMs });
  }
}

export { CallMethod };
