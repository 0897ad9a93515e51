// The HTTP ingress (port 8000) on uWebSockets.js: the KServe v2 REST API, with the binary
// tensor extension, and the WebSocket stream endpoint (ws-stream.ts). A REST request is turned
// into a serialized ModelInferRequest (tensors raw), crosses the segment like a gRPC one, and
// the answer is turned back into JSON (and binary data when asked for). Every error is an
// RFC 7807 problem carrying the request id; every response has an x-request-id header.
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { InferenceError, InferenceErrorCode, toInferenceError } from '../kserve/inference-error.ts';
import { decodeMessage, encodeMessage } from '../kserve/proto.ts';
import { formatRestInferResponse, INFERENCE_HEADER, modelMetadataToJson, parseRestInferRequest, serverMetadataToJson } from '../kserve/rest-codec.ts';
import { GrpcStatus } from '../kserve/status.ts';
import type { Logger } from '../telemetry/logger.ts';
import { resolveRequestId } from '../telemetry/request-id.ts';
import { readBody } from './http-body.ts';
import { CallMethod, type InferenceGateway, SERVER_EXTENSIONS } from './inference-gateway.ts';
import { PROBLEM_CONTENT_TYPE, problemOf, statusLine } from './problem.ts';
import { type IngressMethod, newRequestContext, type RequestContext, type RequestHeaders } from './request-context.ts';
import { loadUws } from './uws-loader.ts';
import { requestHeaders } from './uws-headers.ts';
import { listenExclusive } from './uws-listen.ts';
import { attachWebSocketStream } from './ws-stream.ts';

export interface HttpIngressOptions {
  host: string;
  port: number;
  /** Listen on this unix socket instead of host:port (behind the TLS front for mTLS). */
  unixPath?: string;
  /** Native TLS (uWS SSLApp): key/cert files and the TLS 1.2 cipher list. */
  ssl?: { key_file_name: string; cert_file_name: string; ssl_ciphers: string };
  gateway: InferenceGateway;
  logger: Logger;
  maxRequestBytes: number;
  serverName: string;
  serverVersion: string;
  /** Run on WebSocket upgrades before the 101 (see WsStreamOptions.checkUpgrade). */
  checkUpgrade?: (headers: RequestHeaders) => InferenceError | null;
  /** Idle WebSocket streams are closed after this long (uWS counts whole seconds). */
  wsIdleTimeoutSeconds?: number;
}

/** Request header giving the client's timeout in milliseconds (gRPC clients use grpc-timeout). */
export const TIMEOUT_HEADER = 'x-request-timeout-ms';

/** What a handler must read from the uWS request before returning (it is invalid afterwards). */
export interface HttpRequestInfo {
  url: string;
  requestId: string;
  timeoutMs: number | undefined;
  headers: RequestHeaders;
}

export function parseTimeoutHeader(v: string): number | undefined {
  if (v === '') return undefined;
  if (!/^\d{1,10}$/.test(v)) {
    throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `${TIMEOUT_HEADER} must be a whole number of milliseconds, got '${v.slice(0, 32)}'`);
  }
  return Number(v);
}

function param(req: HttpRequest, i: number): string {
  const raw = req.getParameter(i);
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** One in-flight HTTP exchange: tracks abort so nothing is written to a dead response. */
class Exchange {
  aborted = false;
  done = false;
  ctx: RequestContext | undefined;
  constructor(
    readonly res: HttpResponse,
    readonly info: HttpRequestInfo,
  ) {
    res.onAborted(() => {
      this.aborted = true;
      this.ctx?.cancel?.();
    });
  }

  private write(status: number, contentType: string, body: string | Buffer, extra?: [string, string]): void {
    if (this.aborted || this.done) return;
    this.done = true;
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status)).writeHeader('content-type', contentType).writeHeader('x-request-id', this.info.requestId);
      if (extra !== undefined) this.res.writeHeader(extra[0], extra[1]);
      this.res.end(body);
    });
  }

  json(status: number, body: string): void {
    this.write(status, 'application/json', body);
  }

  binary(jsonLength: number, body: Buffer): void {
    this.write(200, 'application/octet-stream', body, [INFERENCE_HEADER, String(jsonLength)]);
  }

  problem(err: InferenceError): void {
    this.write(err.httpStatus, PROBLEM_CONTENT_TYPE, JSON.stringify(problemOf(err, this.info.url, this.info.requestId)));
  }
}

export class HttpIngress {
  private readonly opts: HttpIngressOptions;
  private readonly app: TemplatedApp;
  private listenSocket: us_listen_socket | undefined;
  private boundPort = 0;

  constructor(opts: HttpIngressOptions) {
    this.opts = opts;
    const uws = loadUws();
    this.app = opts.ssl !== undefined ? uws.SSLApp(opts.ssl) : uws.App();
    this.routes();
  }

  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<number> {
    const uws = loadUws();
    const unixPath = this.opts.unixPath;
    if (unixPath !== undefined) {
      this.listenSocket = await new Promise<us_listen_socket>((resolve, reject) => {
        this.app.listen_unix((sock) => {
          if ((sock as us_listen_socket | false) === false) reject(new InferenceError(InferenceErrorCode.INTERNAL, `cannot listen on ${unixPath}`));
          else resolve(sock);
        }, unixPath);
      });
      this.opts.logger.info({ service: 'http', address: unixPath }, 'listening');
      return 0;
    }
    this.listenSocket = await listenExclusive(uws, this.app, this.opts.host, this.opts.port);
    this.boundPort = uws.us_socket_local_port(this.listenSocket as unknown as Parameters<UwsPort>[0]);
    this.opts.logger.info({ service: 'http', address: `${this.opts.host}:${this.boundPort}`, tls: this.opts.ssl !== undefined }, 'listening');
    return this.boundPort;
  }

  /** Stops accepting connections; open ones finish on their own. */
  stop(): void {
    if (this.listenSocket !== undefined) loadUws().us_listen_socket_close(this.listenSocket);
    this.listenSocket = undefined;
  }

  private info(req: HttpRequest): HttpRequestInfo {
    return {
      url: req.getUrl(),
      requestId: resolveRequestId(req.getHeader('x-request-id'), req.getHeader('traceparent')),
      timeoutMs: undefined,
      headers: this.opts.gateway.wantsHeaders ? requestHeaders(req) : {},
    };
  }

  private routes(): void {
    const app = this.app;
    const gw = this.opts.gateway;
    app.get('/v2', (res, req) => {
      const ex = new Exchange(res, this.info(req));
      ex.json(200, serverMetadataToJson({ name: this.opts.serverName, version: this.opts.serverVersion, extensions: SERVER_EXTENSIONS }));
    });
    app.get('/v2/health/live', (res, req) => new Exchange(res, this.info(req)).json(200, '{"live":true}'));
    app.get('/v2/health/ready', (res, req) => {
      const ex = new Exchange(res, this.info(req));
      if (gw.ready()) ex.json(200, '{"ready":true}');
      else ex.problem(new InferenceError(InferenceErrorCode.NOT_READY, 'this sluice is not ready for inference'));
    });
    for (const prefix of ['/v2/models/:model', '/v2/models/:model/versions/:version']) {
      const versioned = prefix.includes(':version');
      const names = (req: HttpRequest): [string, string] => [param(req, 0), versioned ? param(req, 1) : ''];
      app.get(prefix, (res, req) => {
        const [model, version] = names(req);
        this.metadataCall(new Exchange(res, this.info(req)), 'ModelMetadata', model, version);
      });
      app.get(`${prefix}/ready`, (res, req) => {
        const [model, version] = names(req);
        this.metadataCall(new Exchange(res, this.info(req)), 'ModelReady', model, version);
      });
      app.post(`${prefix}/infer`, (res, req) => {
        const [model, version] = names(req);
        const info = this.info(req);
        const ex = new Exchange(res, info);
        const headerLength = req.getHeader(INFERENCE_HEADER);
        const contentLength = req.getHeader('content-length');
        try {
          info.timeoutMs = parseTimeoutHeader(req.getHeader(TIMEOUT_HEADER));
        } catch (err) {
          this.refuse(ex, model, toInferenceError(err), 0);
          return;
        }
        readBody(
          res,
          contentLength,
          this.opts.maxRequestBytes,
          (body) => this.infer(ex, model, version, body, headerLength === '' ? undefined : headerLength),
          (err) => this.refuse(ex, model, err, 0),
        );
      });
    }
    attachWebSocketStream(app, {
      gateway: gw,
      logger: this.opts.logger,
      maxMessageBytes: this.opts.maxRequestBytes,
      ...(this.opts.checkUpgrade !== undefined ? { checkUpgrade: this.opts.checkUpgrade } : {}),
      ...(this.opts.wsIdleTimeoutSeconds !== undefined ? { idleTimeoutSeconds: this.opts.wsIdleTimeoutSeconds } : {}),
    });
    app.any('/*', (res, req) => {
      const info = this.info(req);
      const ex = new Exchange(res, info);
      const known = /^\/v2(\/health\/(live|ready)|\/models\/[^/]+(\/versions\/[^/]+)?(\/ready|\/infer)?)?$/.test(info.url);
      ex.problem(
        known
          ? new InferenceError(InferenceErrorCode.METHOD_NOT_ALLOWED, `${req.getMethod().toUpperCase()} is not allowed on ${info.url}`)
          : new InferenceError(InferenceErrorCode.NOT_FOUND, `no such endpoint: ${info.url}`),
      );
    });
  }

  /** Answers a refused inference request and reports it (logs, response hooks). */
  private refuse(ex: Exchange, model: string, err: InferenceError, requestBytes: number): void {
    ex.problem(err);
    this.opts.gateway.refused({ requestId: ex.info.requestId, protocol: 'http', method: 'ModelInfer', model, headers: ex.info.headers, requestBytes }, err);
  }

  private context(ex: Exchange, method: IngressMethod, model: string, version: string, requestBytes: number): RequestContext {
    const ctx = newRequestContext({
      requestId: ex.info.requestId,
      protocol: 'http',
      method,
      model,
      version,
      deadline: this.opts.gateway.deadlineFor(ex.info.timeoutMs),
      headers: ex.info.headers,
      requestBytes,
    });
    ex.ctx = ctx;
    return ctx;
  }

  private infer(ex: Exchange, model: string, version: string, body: Buffer, headerLength: string | undefined): void {
    const gw = this.opts.gateway;
    let parsed;
    try {
      parsed = parseRestInferRequest(body, headerLength, model, version);
    } catch (err) {
      this.refuse(ex, model, toInferenceError(err), body.length);
      return;
    }
    const ctx = this.context(ex, 'ModelInfer', model, version, body.length);
    if (ex.aborted) return;
    gw.forward(ctx, CallMethod.ModelInfer, parsed.proto).then(
      (res) => {
        let out;
        try {
          out = formatRestInferResponse(res, parsed.binaryOutputs);
        } catch (err) {
          const e = toInferenceError(err);
          ex.problem(e);
          gw.finish(ctx, e, 0);
          return;
        }
        if (out.binary.length === 0) {
          ex.json(200, out.json);
          gw.finish(ctx, undefined, out.json.length);
        } else {
          const json = Buffer.from(out.json, 'utf8');
          const full = Buffer.concat([json, ...out.binary]);
          ex.binary(json.length, full);
          gw.finish(ctx, undefined, full.length);
        }
      },
      (err: unknown) => {
        const e = toInferenceError(err);
        ex.problem(e);
        gw.finish(ctx, e, 0);
      },
    );
  }

  private metadataCall(ex: Exchange, method: 'ModelMetadata' | 'ModelReady', model: string, version: string): void {
    const gw = this.opts.gateway;
    const ctx = this.context(ex, method, model, version, 0);
    const payload = encodeMessage(method === 'ModelReady' ? 'ModelReadyRequest' : 'ModelMetadataRequest', { name: model, version });
    gw.forward(ctx, CallMethod[method], payload).then(
      (res) => {
        try {
          if (method === 'ModelMetadata') {
            ex.json(200, modelMetadataToJson(res));
          } else if (decodeMessage<{ ready: boolean }>('ModelReadyResponse', res).ready) {
            ex.json(200, '{"ready":true}');
          } else {
            ex.problem(new InferenceError(InferenceErrorCode.NOT_READY, `model '${model}' is not ready`));
          }
          gw.finish(ctx, undefined, res.length);
        } catch (err) {
          const e = toInferenceError(err);
          ex.problem(e);
          gw.finish(ctx, e, 0);
        }
      },
      (err: unknown) => {
        const e = toInferenceError(err);
        if (method === 'ModelReady' && (e.grpcStatus === GrpcStatus.NOT_FOUND || e.grpcStatus === GrpcStatus.UNAVAILABLE)) {
          ex.problem(new InferenceError(InferenceErrorCode.NOT_READY, `model '${model}' is not ready: ${e.message}`));
        } else {
          ex.problem(e);
        }
        gw.finish(ctx, e, 0);
      },
    );
  }
}

type UwsPort = ReturnType<typeof loadUws>['us_socket_local_port'];
