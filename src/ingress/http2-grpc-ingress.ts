// The gRPC ingress (port 8001): inference.GRPCInferenceService on the lean node:http2 gRPC
// server. Requests stay serialized: the scanner reads model, version, id and tensor shapes
// from the bytes and checks them, and the original bytes cross the segment. Every answer
// carries x-request-id in its trailers; failures are gRPC statuses with the reason in
// grpc-message. Other services (grpc.health.v1) run on a grpc-js server behind a private unix
// socket and are relayed per stream, so they share the port and its TLS listener. Services served
// on another port of the node (sluice.v1.TensorTransfer: listeners.training) are answered
// UNIMPLEMENTED with where they are.
import { mkdtempSync, rmSync } from 'node:fs';
import type http2 from 'node:http2';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { METHODS } from '../kserve/grpc-service.ts';
import { scanInferRequest, scanRequestHead, validateInferRequest } from '../kserve/infer-request-scan.ts';
import { InferenceError, InferenceErrorCode, toInferenceError } from '../kserve/inference-error.ts';
import { decodeMessage, encodeMessage } from '../kserve/proto.ts';
import { GrpcStatus } from '../kserve/status.ts';
import { streamErrorResponse, wrapStreamResponse } from '../kserve/stream-response.ts';
import type { Logger } from '../telemetry/logger.ts';
import { resolveRequestId } from '../telemetry/request-id.ts';
import { headerValue, metadataOf } from './grpc-metadata.ts';
import { GrpcStreamRelay } from './grpc-stream-relay.ts';
import { type GrpcServerCall, Http2GrpcServer, type StreamingHandlers, trailersOnly } from './http2-grpc-server.ts';
import { CallMethod, type InferenceGateway, SERVER_EXTENSIONS } from './inference-gateway.ts';
import { type IngressMethod, newRequestContext, type RequestContext, type RequestHeaders } from './request-context.ts';
import { widenServerReceiveWindow } from '../grpc/server-receive-window.ts';
import { shutdownGrpcServer } from '../grpc/server-shutdown.ts';
import type { ListenerLimits } from '../net/connection-limits.ts';

/** HTTP/2 receive window of the inner grpc-js server (per connection and stream). */
const INNER_RECEIVE_WINDOW_BYTES = 16 * 1024 * 1024;

export interface Http2GrpcIngressOptions {
  host: string;
  port: number;
  gateway: InferenceGateway;
  logger: Logger;
  maxRequestBytes: number;
  maxResponseBytes: number;
  serverName: string;
  serverVersion: string;
  /** Services besides inference (health, training): hosted on a grpc-js server behind the relay. */
  addServices?: (server: grpc.Server) => void;
  /** Accepts connections some other way than plaintext host:port (sluice's TLS listener). */
  binder?: ConnectionBinder;
  /** Interceptors of the grpc-js server behind the relay (the security gates of sluice's own services). */
  interceptors?: grpc.ServerInterceptor[];
  /**
   * Paths this port does not serve because another listener of the node does (TensorTransfer:
   * listeners.training), by path prefix: answered UNIMPLEMENTED with `message` (naming that
   * listener) and x-request-id.
   */
  servedElsewhere?: readonly { prefix: string; message: string }[];
  /** Handshake and idle deadlines and the connection cap of the port (listeners.grpc). */
  limits?: ListenerLimits;
}

export interface ConnectionBinding {
  port: number;
  /** What the 'listening' log line says about it (default: host:port over TLS). */
  logFields?: Record<string, unknown>;
  stopAccepting(): void;
  close(): Promise<void>;
}

/** Listens on host:port and hands every accepted h2 connection to `accept`. */
export type ConnectionBinder = (accept: (socket: Socket) => void, host: string, port: number) => Promise<ConnectionBinding>;

/**
 * Requests one ModelStreamInfer stream may have in flight (as the WebSocket stream); past it the
 * stream is not read until one is answered, and HTTP/2 flow control holds the client back.
 */
export const MAX_STREAM_INFLIGHT = 256;

/** The model name of a request, or '' when it cannot be read (for logs and metrics only). */
function decodeRequest(name: 'RepositoryIndexRequest', body: Buffer): void {
  try {
    decodeMessage(name, body);
  } catch (err) {
    throw new InferenceError(InferenceErrorCode.MALFORMED_PROTOBUF, `${name} does not parse: ${(err as Error).message}`);
  }
}

function modelOf(body: Buffer): string {
  try {
    return scanRequestHead(body).modelName;
  } catch {
    return '';
  }
}

export class Http2GrpcIngress {
  private readonly opts: Http2GrpcIngressOptions;
  private readonly server: Http2GrpcServer;
  private inner: { server: grpc.Server; dir: string; relay: GrpcStreamRelay } | undefined;
  private boundPort = 0;
  private binding: ConnectionBinding | undefined;

  constructor(opts: Http2GrpcIngressOptions) {
    this.opts = opts;
    let relay: GrpcStreamRelay | undefined;
    if (opts.addServices !== undefined) {
      const dir = mkdtempSync(path.join(tmpdir(), 'sluice-grpc-'));
      relay = new GrpcStreamRelay(path.join(dir, 'grpc.sock'));
      const inner = new grpc.Server({
        'grpc.max_receive_message_length': opts.maxRequestBytes,
        'grpc.max_send_message_length': opts.maxResponseBytes,
        'grpc.enable_channelz': 0,
        ...(opts.interceptors !== undefined ? { interceptors: opts.interceptors } : {}),
      });
      // The relay's streams may carry messages up to maxRequestBytes through here.
      widenServerReceiveWindow(inner, INNER_RECEIVE_WINDOW_BYTES);
      opts.addServices(inner);
      this.inner = { server: inner, dir, relay };
    }
    const log = opts.logger;
    const elsewhere = opts.servedElsewhere ?? [];
    const requestIdOf = (headers: http2.IncomingHttpHeaders): string => resolveRequestId(headerValue(headers, 'x-request-id'), headerValue(headers, 'traceparent'));
    const fallback =
      relay === undefined && elsewhere.length === 0
        ? undefined
        : (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void => {
            const p = String(headers[':path'] ?? '');
            const moved = elsewhere.find((e) => p.startsWith(e.prefix));
            if (moved !== undefined) {
              const requestId = requestIdOf(headers);
              log.info({ path: p.slice(0, 200), requestId }, moved.message);
              trailersOnly(stream, GrpcStatus.UNIMPLEMENTED, moved.message, { 'x-request-id': requestId });
            } else if (relay !== undefined) relay.relay(stream, headers);
            else trailersOnly(stream, GrpcStatus.UNIMPLEMENTED, `unknown method ${p}`, { 'x-request-id': requestIdOf(headers) });
          };
    this.server = new Http2GrpcServer({
      maxMessageBytes: opts.maxRequestBytes,
      ...(fallback !== undefined ? { fallback } : {}),
      onError: (err) => log.debug({ err: err.message }, 'grpc connection error'),
      requestIdOf,
      ...(opts.limits !== undefined ? { limits: opts.limits } : {}),
    });
    const gw = opts.gateway;
    const fixed = (build: () => Buffer) => ({ kind: 'unary' as const, handle: (call: GrpcServerCall) => call.reply(build(), { 'x-request-id': this.requestIdOf(call) }) });
    this.server
      .register(METHODS.ServerLive.path, fixed(() => encodeMessage('ServerLiveResponse', { live: true })))
      .register(METHODS.ServerReady.path, fixed(() => encodeMessage('ServerReadyResponse', { ready: gw.ready() })))
      .register(
        METHODS.ServerMetadata.path,
        fixed(() => encodeMessage('ServerMetadataResponse', { name: opts.serverName, version: opts.serverVersion, extensions: SERVER_EXTENSIONS })),
      )
      .register(METHODS.ModelReady.path, { kind: 'unary', handle: (call, req) => this.unary(call, req, 'ModelReady') })
      .register(METHODS.ModelMetadata.path, { kind: 'unary', handle: (call, req) => this.unary(call, req, 'ModelMetadata') })
      .register(METHODS.ModelInfer.path, { kind: 'unary', handle: (call, req) => this.unary(call, req, 'ModelInfer') })
      .register(METHODS.ModelConfig.path, { kind: 'unary', handle: (call, req) => this.unary(call, req, 'ModelConfig') })
      .register(METHODS.ModelStatistics.path, { kind: 'unary', handle: (call, req) => this.unary(call, req, 'ModelStatistics') })
      .register(METHODS.RepositoryIndex.path, { kind: 'unary', handle: (call, req) => this.unary(call, req, 'RepositoryIndex') })
      .register(METHODS.ModelStreamInfer.path, { kind: 'streaming', handle: (call) => this.stream(call) });
  }

  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<number> {
    if (this.inner !== undefined) {
      const { server, dir } = this.inner;
      await new Promise<number>((resolve, reject) =>
        server.bindAsync(`unix:${path.join(dir, 'grpc.sock')}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
      );
    }
    if (this.opts.binder !== undefined) {
      this.binding = await this.opts.binder((socket) => this.server.acceptConnection(socket), this.opts.host, this.opts.port);
      this.boundPort = this.binding.port;
      this.opts.logger.info(this.binding.logFields ?? { listener: 'grpc', address: `${this.opts.host}:${this.boundPort}`, tls: true }, 'listening');
      return this.boundPort;
    }
    this.boundPort = await this.server.listen(this.opts.host, this.opts.port);
    this.opts.logger.info({ listener: 'grpc', address: `${this.opts.host}:${this.boundPort}` }, 'listening');
    return this.boundPort;
  }

  /** Stops accepting; waits up to graceMs for open calls, then cuts them. */
  async stop(graceMs: number): Promise<void> {
    this.binding?.stopAccepting();
    const inner = this.inner;
    const innerDone = inner === undefined ? Promise.resolve() : shutdownGrpcServer(inner.server, graceMs);
    await this.server.close(graceMs);
    await innerDone;
    if (inner !== undefined) {
      inner.relay.close();
      rmSync(inner.dir, { recursive: true, force: true });
    }
    await this.binding?.close();
  }

  private requestIdOf(call: GrpcServerCall): string {
    return call.requestId ?? resolveRequestId(headerValue(call.headers, 'x-request-id'), headerValue(call.headers, 'traceparent'));
  }

  private headersOf(call: GrpcServerCall): RequestHeaders {
    return this.opts.gateway.wantsHeaders ? metadataOf(call.headers) : {};
  }

  /** Builds the context of one request from its bytes; throws InferenceError for bad input. */
  private contextFor(method: IngressMethod, body: Buffer, requestId: string, call: GrpcServerCall, deadline: number): RequestContext {
    let model: string;
    let version: string;
    if (method === 'ModelInfer') {
      const scan = scanInferRequest(body);
      validateInferRequest(scan, body);
      model = scan.modelName;
      version = scan.modelVersion;
    } else if (method === 'RepositoryIndex') {
      // repository_name = 1, ready = 2 (a bool): checked by decoding; the index is server-wide.
      decodeRequest('RepositoryIndexRequest', body);
      model = '';
      version = '';
    } else {
      const head = scanRequestHead(body);
      model = head.modelName;
      version = head.modelVersion;
    }
    // ModelStatistics without a name asks for every model (Triton's convention).
    if (model === '' && method !== 'RepositoryIndex' && method !== 'ModelStatistics') throw new InferenceError(InferenceErrorCode.BAD_REQUEST, 'the request names no model');
    return newRequestContext({
      requestId,
      protocol: 'grpc',
      method,
      model,
      version,
      deadline,
      ...(call.timeoutMs !== undefined ? { timeoutMs: call.timeoutMs } : {}),
      headers: this.headersOf(call),
      requestBytes: body.length,
    });
  }

  private unary(call: GrpcServerCall, body: Buffer, method: IngressMethod): void {
    const gw = this.opts.gateway;
    const requestId = this.requestIdOf(call);
    const trailers = { 'x-request-id': requestId };
    let ctx: RequestContext;
    try {
      ctx = this.contextFor(method, body, requestId, call, call.deadline ?? gw.deadlineFor(undefined));
    } catch (err) {
      const e = toInferenceError(err);
      call.finish(e.grpcStatus, e.message, trailers);
      gw.refused({ requestId, protocol: 'grpc', method, model: modelOf(body), headers: this.headersOf(call), requestBytes: body.length }, e);
      return;
    }
    call.onCancel(() => ctx.cancel?.());
    const serverWide = method === 'RepositoryIndex' || (method === 'ModelStatistics' && ctx.model === '');
    const answer = serverWide ? gw.forwardToAll(ctx, method, body) : gw.forward(ctx, CallMethod[method], body);
    answer.then(
      (res) => {
        call.reply(res, ctx.responseHeaders === undefined ? trailers : { ...ctx.responseHeaders, ...trailers });
        gw.finish(ctx, undefined, res.length);
      },
      (err: unknown) => {
        const e = toInferenceError(err);
        if (method === 'ModelReady' && (e.grpcStatus === GrpcStatus.NOT_FOUND || e.grpcStatus === GrpcStatus.UNAVAILABLE)) {
          // Readiness probes get an answer, not an error: unknown or unreachable means not ready.
          call.reply(encodeMessage('ModelReadyResponse', { ready: false }), trailers);
        } else {
          call.finish(e.grpcStatus, e.message, trailers);
        }
        gw.finish(ctx, e, 0);
      },
    );
  }

  /** Triton's streaming RPC: each message is an independent request, answered in completion order. */
  private stream(call: GrpcServerCall): StreamingHandlers {
    const gw = this.opts.gateway;
    const base = this.requestIdOf(call).slice(0, 100);
    const open = new Set<RequestContext>();
    let seq = 0;
    let ended = false;
    const settled = (ctx: RequestContext): void => {
      open.delete(ctx);
      if (open.size < MAX_STREAM_INFLIGHT) call.resumeInput();
      if (ended && open.size === 0) call.finish(GrpcStatus.OK, '', { 'x-request-id': base });
    };
    call.onCancel(() => {
      for (const ctx of open) ctx.cancel?.();
    });
    const headOf = (body: Buffer, model: string): { modelName: string; id: string } => {
      try {
        return scanRequestHead(body);
      } catch {
        return { modelName: model, id: '' }; // Unreadable request: answer without its id.
      }
    };
    return {
      onMessage: (body) => {
        const requestId = `${base}:${++seq}`;
        const deadline = Math.min(gw.deadlineFor(undefined), call.deadline ?? Infinity);
        let ctx: RequestContext;
        try {
          ctx = this.contextFor('ModelInfer', body, requestId, call, deadline);
        } catch (err) {
          const e = toInferenceError(err);
          const head = headOf(body, '');
          call.sendMessage(streamErrorResponse(`${e.message} (request_id ${requestId})`, head.modelName, head.id));
          gw.refused({ requestId, protocol: 'grpc', method: 'ModelInfer', model: head.modelName, headers: this.headersOf(call), requestBytes: body.length }, e);
          return;
        }
        open.add(ctx);
        if (open.size >= MAX_STREAM_INFLIGHT) call.pauseInput();
        gw.forward(ctx, CallMethod.ModelInfer, body).then(
          (res) => {
            call.sendMessage(wrapStreamResponse(res));
            gw.finish(ctx, undefined, res.length);
            settled(ctx);
          },
          (err: unknown) => {
            const e = toInferenceError(err);
            const head = headOf(body, ctx.model);
            call.sendMessage(streamErrorResponse(`${e.message} (request_id ${requestId})`, head.modelName, head.id));
            gw.finish(ctx, e, 0);
            settled(ctx);
          },
        );
      },
      onEnd: () => {
        ended = true;
        if (open.size === 0) call.finish(GrpcStatus.OK, '', { 'x-request-id': base });
      },
    };
  }
}
