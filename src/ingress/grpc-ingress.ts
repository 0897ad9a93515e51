// The gRPC ingress (port 8001): inference.GRPCInferenceService on @grpc/grpc-js. Requests stay
// serialized: the scanner reads model, version, id and tensor shapes from the bytes and checks
// them, and the original bytes cross the segment. Every answer carries x-request-id in its
// trailers; failures are gRPC statuses with the reason in `details`.
import * as grpc from '@grpc/grpc-js';
import { passthroughServiceDefinition } from '../kserve/grpc-service.ts';
import { scanInferRequest, scanRequestHead, validateInferRequest } from '../kserve/infer-request-scan.ts';
import { InferenceError, InferenceErrorCode, toInferenceError } from '../kserve/inference-error.ts';
import { encodeMessage } from '../kserve/proto.ts';
import { GrpcStatus } from '../kserve/status.ts';
import { streamErrorResponse, wrapStreamResponse } from '../kserve/stream-response.ts';
import type { Logger } from '../telemetry/logger.ts';
import { resolveRequestId } from '../telemetry/request-id.ts';
import { CallMethod, type InferenceGateway, SERVER_EXTENSIONS } from './inference-gateway.ts';
import { type IngressMethod, newRequestContext, type RequestContext, type RequestHeaders } from './request-context.ts';

export interface GrpcIngressOptions {
  host: string;
  port: number;
  gateway: InferenceGateway;
  logger: Logger;
  maxRequestBytes: number;
  maxResponseBytes: number;
  serverName: string;
  serverVersion: string;
  /** Adds more services to the same server (e.g. grpc.health.v1). */
  addServices?: (server: grpc.Server) => void;
  /** Binds the server some other way than plaintext host:port (sluice's TLS listener). */
  binder?: GrpcBinder;
  /** Server interceptors (the security gates of sluice's own services: grpc-gate-interceptor.ts). */
  interceptors?: grpc.ServerInterceptor[];
}

export interface GrpcBinding {
  port: number;
  /** Stops accepting connections (open ones drain through the server's shutdown). */
  stopAccepting(): void;
  close(): Promise<void>;
}

export type GrpcBinder = (server: grpc.Server, host: string, port: number) => Promise<GrpcBinding>;

type UnaryCall = grpc.ServerUnaryCall<Buffer, Buffer>;
type Callback = grpc.sendUnaryData<Buffer>;

function firstString(md: grpc.Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return typeof v === 'string' ? v : undefined;
}

function headersOf(md: grpc.Metadata): RequestHeaders {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(md.getMap())) if (typeof v === 'string') out[k] = v;
  return out;
}

/** The model name of a request, or '' when it cannot be read (for logs and metrics only). */
function modelOf(body: Buffer): string {
  try {
    return scanRequestHead(body).modelName;
  } catch {
    return '';
  }
}

function trailer(requestId: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('x-request-id', requestId);
  return md;
}

function statusFor(err: InferenceError, requestId: string): Partial<grpc.StatusObject> {
  return { code: err.grpcStatus, details: err.message, metadata: trailer(requestId) };
}

/** Milliseconds left until the call's deadline, or undefined when the client set none. */
function timeoutOf(call: { getDeadline(): grpc.Deadline }): number | undefined {
  const d = call.getDeadline();
  const t = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : undefined;
}

export class GrpcIngress {
  private readonly opts: GrpcIngressOptions;
  private readonly server: grpc.Server;
  private boundPort = 0;
  private binding: GrpcBinding | undefined;

  constructor(opts: GrpcIngressOptions) {
    this.opts = opts;
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': opts.maxRequestBytes,
      'grpc.max_send_message_length': opts.maxResponseBytes,
      // channelz bookkeeping costs on every call and sluice exports its own metrics.
      'grpc.enable_channelz': 0,
      ...(opts.interceptors !== undefined ? { interceptors: opts.interceptors } : {}),
    });
    const gw = opts.gateway;
    this.server.addService(passthroughServiceDefinition(), {
      ServerLive: (call: UnaryCall, cb: Callback) => cb(null, encodeMessage('ServerLiveResponse', { live: true }), trailer(this.requestIdOf(call.metadata))),
      ServerReady: (call: UnaryCall, cb: Callback) =>
        cb(null, encodeMessage('ServerReadyResponse', { ready: gw.ready() }), trailer(this.requestIdOf(call.metadata))),
      ServerMetadata: (call: UnaryCall, cb: Callback) =>
        cb(
          null,
          encodeMessage('ServerMetadataResponse', { name: opts.serverName, version: opts.serverVersion, extensions: SERVER_EXTENSIONS }),
          trailer(this.requestIdOf(call.metadata)),
        ),
      ModelReady: (call: UnaryCall, cb: Callback) => this.unary(call, cb, 'ModelReady'),
      ModelMetadata: (call: UnaryCall, cb: Callback) => this.unary(call, cb, 'ModelMetadata'),
      ModelInfer: (call: UnaryCall, cb: Callback) => this.unary(call, cb, 'ModelInfer'),
      ModelStreamInfer: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => this.stream(call),
    });
    opts.addServices?.(this.server);
  }

  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<number> {
    if (this.opts.binder !== undefined) {
      this.binding = await this.opts.binder(this.server, this.opts.host, this.opts.port);
      this.boundPort = this.binding.port;
      this.opts.logger.info({ service: 'grpc', address: `${this.opts.host}:${this.boundPort}`, tls: true }, 'listening');
      return this.boundPort;
    }
    this.boundPort = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(`${this.opts.host}:${this.opts.port}`, grpc.ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      );
    });
    this.opts.logger.info({ service: 'grpc', address: `${this.opts.host}:${this.boundPort}` }, 'listening');
    return this.boundPort;
  }

  /** Stops accepting; waits up to graceMs for open calls, then cuts them. */
  async stop(graceMs: number): Promise<void> {
    this.binding?.stopAccepting();
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
    await this.binding?.close();
  }

  private requestIdOf(md: grpc.Metadata): string {
    return resolveRequestId(firstString(md, 'x-request-id'), firstString(md, 'traceparent'));
  }

  /** Builds the context of one request from its bytes; throws InferenceError for bad input. */
  private contextFor(method: IngressMethod, body: Buffer, requestId: string, md: grpc.Metadata, deadline: number): RequestContext {
    let model: string;
    let version: string;
    if (method === 'ModelInfer') {
      const scan = scanInferRequest(body);
      validateInferRequest(scan, body);
      model = scan.modelName;
      version = scan.modelVersion;
    } else {
      const head = scanRequestHead(body);
      model = head.modelName;
      version = head.modelVersion;
    }
    if (model === '') throw new InferenceError(InferenceErrorCode.BAD_REQUEST, 'the request names no model');
    return newRequestContext({
      requestId,
      protocol: 'grpc',
      method,
      model,
      version,
      deadline,
      headers: this.opts.gateway.wantsHeaders ? headersOf(md) : {},
      requestBytes: body.length,
    });
  }

  private unary(call: UnaryCall, cb: Callback, method: IngressMethod): void {
    const gw = this.opts.gateway;
    const requestId = this.requestIdOf(call.metadata);
    let ctx: RequestContext;
    try {
      ctx = this.contextFor(method, call.request, requestId, call.metadata, gw.deadlineFor(timeoutOf(call)));
    } catch (err) {
      const e = toInferenceError(err);
      cb(statusFor(e, requestId));
      gw.refused({ requestId, protocol: 'grpc', method, model: modelOf(call.request), headers: gw.wantsHeaders ? headersOf(call.metadata) : {}, requestBytes: call.request.length }, e);
      return;
    }
    call.once('cancelled', () => ctx.cancel?.());
    const callMethod = CallMethod[method];
    gw.forward(ctx, callMethod, call.request).then(
      (res) => {
        cb(null, res, trailer(requestId));
        gw.finish(ctx, undefined, res.length);
      },
      (err: unknown) => {
        const e = toInferenceError(err);
        if (method === 'ModelReady' && (e.grpcStatus === GrpcStatus.NOT_FOUND || e.grpcStatus === GrpcStatus.UNAVAILABLE)) {
          // Readiness probes get an answer, not an error: unknown or unreachable means not ready.
          cb(null, encodeMessage('ModelReadyResponse', { ready: false }), trailer(requestId));
        } else {
          cb(statusFor(e, requestId));
        }
        gw.finish(ctx, e, 0);
      },
    );
  }

  /** Triton's streaming RPC: each message is an independent request, answered in completion order. */
  private stream(call: grpc.ServerDuplexStream<Buffer, Buffer>): void {
    const gw = this.opts.gateway;
    const base = this.requestIdOf(call.metadata).slice(0, 100);
    const streamTimeout = timeoutOf(call);
    const open = new Set<RequestContext>();
    let seq = 0;
    let ended = false;
    const maybeEnd = (): void => {
      if (ended && open.size === 0) call.end(trailer(base));
    };
    call.on('data', (body: Buffer) => {
      const requestId = `${base}:${++seq}`;
      const deadline = Math.min(gw.deadlineFor(undefined), streamTimeout === undefined ? Infinity : Date.now() + streamTimeout);
      let ctx: RequestContext;
      try {
        ctx = this.contextFor('ModelInfer', body, requestId, call.metadata, deadline);
      } catch (err) {
        const e = toInferenceError(err);
        let head = { modelName: '', id: '' };
        try {
          head = scanRequestHead(body);
        } catch {
          // Unreadable request: answer without its id.
        }
        call.write(streamErrorResponse(`${e.message} (request_id ${requestId})`, head.modelName, head.id));
        gw.refused({ requestId, protocol: 'grpc', method: 'ModelInfer', model: head.modelName, headers: gw.wantsHeaders ? headersOf(call.metadata) : {}, requestBytes: body.length }, e);
        return;
      }
      open.add(ctx);
      gw.forward(ctx, CallMethod.ModelInfer, body).then(
        (res) => {
          open.delete(ctx);
          if (!call.cancelled) call.write(wrapStreamResponse(res));
          gw.finish(ctx, undefined, res.length);
          maybeEnd();
        },
        (err: unknown) => {
          open.delete(ctx);
          const e = toInferenceError(err);
          let head = { modelName: ctx.model, id: '' };
          try {
            head = scanRequestHead(body);
          } catch {
            // Already scanned once; cannot fail here.
          }
          if (!call.cancelled) call.write(streamErrorResponse(`${e.message} (request_id ${requestId})`, head.modelName, head.id));
          gw.finish(ctx, e, 0);
          maybeEnd();
        },
      );
    });
    call.on('end', () => {
      ended = true;
      maybeEnd();
    });
    call.on('cancelled', () => {
      for (const ctx of open) ctx.cancel?.();
    });
    call.on('error', () => undefined);
  }
}
