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
}

export const SERVER_EXTENSIONS = ['binary_tensor_data', 'model_configuration_none', 'sluice_segment_forwarding'];

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
        { request_id: ctx.requestId, protocol: ctx.protocol, method: ctx.method, model: ctx.model, tenant: ctx.tenant, code: error.code, status, duration_ms: Math.round(durationMs * 1000) / 1000, err: error.message },
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
