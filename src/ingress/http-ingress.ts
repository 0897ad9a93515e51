// The HTTP ingress (port 8000) on uWebSockets.js: the KServe v2 REST API, with the binary
// tensor extension, and the WebSocket stream endpoint (ws-stream.ts). A REST request is turned
// into a serialized ModelInferRequest (tensors raw), crosses the segment like a gRPC one, and
// the answer is turned back into JSON (and binary data when asked for). Every error is an
// RFC 7807 problem carrying the request id; every response has an x-request-id header.
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { InferenceError, InferenceErrorCode, toInferenceError } from '../kserve/inference-error.ts';
import { decodeMessage, encodeMessage, messageToJsonObject } from '../kserve/proto.ts';
import { formatRestInferResponse, INFERENCE_HEADER, modelMetadataToJson, parseJson, parseRestInferRequest, serverMetadataToJson } from '../kserve/rest-codec.ts';
import { GrpcStatus } from '../kserve/status.ts';
import type { Logger } from '../telemetry/logger.ts';
import { resolveRequestId } from '../telemetry/request-id.ts';
import type { AdminRoute } from './admin-route.ts';
import { readBody } from './http-body.ts';
import { acceptsGzip, decodeContentEncoding, gzipBody } from './http-compression.ts';
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
  /** Administrative endpoints (each gates itself), e.g. POST /v2/sluice/evidence. */
  adminRoutes?: readonly AdminRoute[];
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
  /** The client takes a gzip-compressed answer (Accept-Encoding). */
  gzipResponse: boolean;
  /** Content-Encoding of the request body ('' when none). */
  contentEncoding: string;
}

type ModelMethod = 'ModelMetadata' | 'ModelReady' | 'ModelConfig' | 'ModelStatistics';

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
/** Answers being gzip-compressed on the libuv pool: decided, but not yet written to their sockets. */
interface CompressingCount {
  count: number;
}

class Exchange {
  aborted = false;
  done = false;
  ctx: RequestContext | undefined;
  constructor(
    readonly res: HttpResponse,
    readonly info: HttpRequestInfo,
    private readonly compressing: CompressingCount,
  ) {
    res.onAborted(() => {
      this.aborted = true;
      this.ctx?.cancel?.();
    });
  }

  private write(status: number, contentType: string, body: string | Buffer, extra?: [string, string], more?: Readonly<Record<string, string>>): void {
    if (this.aborted || this.done) return;
    this.done = true;
    if (this.info.gzipResponse) {
      // Compressed off the event loop; the exchange may be aborted meanwhile. Counted until
      // written: the call has left the forwarder, and a drain must not end before the answer does.
      this.compressing.count++;
      gzipBody(body)
        .then(
          (z) => this.send(status, contentType, z, extra, more, true),
          () => this.send(status, contentType, body, extra, more, false),
        )
        .finally(() => this.compressing.count--);
      return;
    }
    this.send(status, contentType, body, extra, more, false);
  }

  private send(status: number, contentType: string, body: string | Buffer, extra: [string, string] | undefined, more: Readonly<Record<string, string>> | undefined, gzipped: boolean): void {
    if (this.aborted) return;
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status)).writeHeader('content-type', contentType).writeHeader('x-request-id', this.info.requestId);
      if (gzipped) this.res.writeHeader('content-encoding', 'gzip').writeHeader('vary', 'accept-encoding');
      if (extra !== undefined) this.res.writeHeader(extra[0], extra[1]);
      if (more !== undefined) for (const [k, v] of Object.entries(more)) this.res.writeHeader(k, v);
      this.res.end(body);
    });
  }

  /** Any content type (administrative answers such as an evidence pack). `headers`: extra response headers (e.g. pii-flags). */
  raw(contentType: string, body: string | Buffer, headers?: Readonly<Record<string, string>>): void {
    this.write(200, contentType, body, undefined, headers);
  }

  json(status: number, body: string, headers?: Readonly<Record<string, string>>): void {
    this.write(status, 'application/json', body, undefined, headers);
  }

  binary(jsonLength: number, body: Buffer, headers?: Readonly<Record<string, string>>): void {
    this.write(200, 'application/octet-stream', body, [INFERENCE_HEADER, String(jsonLength)], headers);
  }

  problem(err: InferenceError, extra?: [string, string]): void {
    this.write(err.httpStatus, PROBLEM_CONTENT_TYPE, JSON.stringify(problemOf(err, this.info.url, this.info.requestId)), extra);
  }
}

export class HttpIngress {
  private readonly opts: HttpIngressOptions;
  private readonly app: TemplatedApp;
  private listenSocket: us_listen_socket | undefined;
  private boundPort = 0;
  private readonly compressing: CompressingCount = { count: 0 };

  constructor(opts: HttpIngressOptions) {
    this.opts = opts;
    const uws = loadUws();
    this.app = opts.ssl !== undefined ? uws.SSLApp(opts.ssl) : uws.App();
    this.routes();
  }

  get port(): number {
    return this.boundPort;
  }

  /** Answers decided but still being compressed: the drain waits for them too. */
  get unsentAnswers(): number {
    return this.compressing.count;
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
      this.opts.logger.info({ listener: 'http', address: unixPath }, 'listening');
      return 0;
    }
    this.listenSocket = await listenExclusive(uws, this.app, this.opts.host, this.opts.port);
    this.boundPort = uws.us_socket_local_port(this.listenSocket as unknown as Parameters<UwsPort>[0]);
    this.opts.logger.info({ listener: 'http', address: `${this.opts.host}:${this.boundPort}`, tls: this.opts.ssl !== undefined }, 'listening');
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
      gzipResponse: acceptsGzip(req.getHeader('accept-encoding')),
      contentEncoding: req.getHeader('content-encoding'),
    };
  }

  /** Reads the body (bounded), undoes its Content-Encoding (bounded again), and hands it on. */
  private body(res: HttpResponse, req: HttpRequest, info: HttpRequestInfo, done: (body: Buffer) => void, fail: (err: InferenceError) => void): void {
    const max = this.opts.maxRequestBytes;
    readBody(
      res,
      req.getHeader('content-length'),
      max,
      (raw) => {
        if (info.contentEncoding === '' || info.contentEncoding === 'identity') done(raw);
        else decodeContentEncoding(info.contentEncoding, raw, max).then(done, fail);
      },
      fail,
    );
  }

  private routes(): void {
    const app = this.app;
    const gw = this.opts.gateway;
    app.get('/v2', (res, req) => {
      const ex = new Exchange(res, this.info(req), this.compressing);
      ex.json(200, serverMetadataToJson({ name: this.opts.serverName, version: this.opts.serverVersion, extensions: SERVER_EXTENSIONS }));
    });
    app.get('/v2/health/live', (res, req) => new Exchange(res, this.info(req), this.compressing).json(200, '{"live":true}'));
    app.get('/v2/health/ready', (res, req) => {
      const ex = new Exchange(res, this.info(req), this.compressing);
      if (gw.ready()) ex.json(200, '{"ready":true}');
      else ex.problem(new InferenceError(InferenceErrorCode.NOT_READY, 'this sluice is not ready for inference'));
    });
    // Statistics of every model (Triton: GET /v2/models/stats); before /v2/models/:model.
    app.get('/v2/models/stats', (res, req) => this.modelCall(new Exchange(res, this.info(req), this.compressing), 'ModelStatistics', '', ''));
    app.post('/v2/repository/index', (res, req) => {
      const info = this.info(req);
      const ex = new Exchange(res, info, this.compressing);
      this.body(
        res,
        req,
        info,
        (body) => this.repositoryIndex(ex, body),
        (err) => this.refuseCall(ex, 'RepositoryIndex', '', err, 0),
      );
    });
    for (const prefix of ['/v2/models/:model', '/v2/models/:model/versions/:version']) {
      const versioned = prefix.includes(':version');
      const names = (req: HttpRequest): [string, string] => [param(req, 0), versioned ? param(req, 1) : ''];
      app.get(prefix, (res, req) => {
        const [model, version] = names(req);
        this.modelCall(new Exchange(res, this.info(req), this.compressing), 'ModelMetadata', model, version);
      });
      app.get(`${prefix}/ready`, (res, req) => {
        const [model, version] = names(req);
        this.modelCall(new Exchange(res, this.info(req), this.compressing), 'ModelReady', model, version);
      });
      app.get(`${prefix}/config`, (res, req) => {
        const [model, version] = names(req);
        this.modelCall(new Exchange(res, this.info(req), this.compressing), 'ModelConfig', model, version);
      });
      app.get(`${prefix}/stats`, (res, req) => {
        const [model, version] = names(req);
        this.modelCall(new Exchange(res, this.info(req), this.compressing), 'ModelStatistics', model, version);
      });
      app.post(`${prefix}/infer`, (res, req) => {
        const [model, version] = names(req);
        const info = this.info(req);
        const ex = new Exchange(res, info, this.compressing);
        const headerLength = req.getHeader(INFERENCE_HEADER);
        try {
          info.timeoutMs = parseTimeoutHeader(req.getHeader(TIMEOUT_HEADER));
        } catch (err) {
          this.refuse(ex, model, toInferenceError(err), 0);
          return;
        }
        this.body(
          res,
          req,
          info,
          (body) => this.infer(ex, model, version, body, headerLength === '' ? undefined : headerLength),
          (err) => this.refuse(ex, model, err, 0),
        );
      });
    }
    for (const route of this.opts.adminRoutes ?? []) {
      app.post(route.path, (res, req) => {
        const info = { ...this.info(req), headers: requestHeaders(req) };
        const ex = new Exchange(res, info, this.compressing);
        readBody(
          res,
          req.getHeader('content-length'),
          this.opts.maxRequestBytes,
          (body) => {
            route.handle({ requestId: info.requestId, headers: info.headers, body }).then(
              (out) => ex.raw(out.contentType, out.body, out.headers),
              (err: unknown) => ex.problem(toInferenceError(err)),
            );
          },
          (err) => ex.problem(err),
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
      const ex = new Exchange(res, info, this.compressing);
      const allow = allowedMethods(info.url);
      if (allow === undefined) ex.problem(new InferenceError(InferenceErrorCode.NOT_FOUND, `no such endpoint: ${info.url}`));
      else ex.problem(new InferenceError(InferenceErrorCode.METHOD_NOT_ALLOWED, `${req.getMethod().toUpperCase()} is not allowed on ${info.url} (${allow} is)`), ['allow', allow]);
    });
  }

  /** Answers a refused inference request and reports it (logs, response hooks). */
  private refuse(ex: Exchange, model: string, err: InferenceError, requestBytes: number): void {
    this.refuseCall(ex, 'ModelInfer', model, err, requestBytes);
  }

  private refuseCall(ex: Exchange, method: IngressMethod, model: string, err: InferenceError, requestBytes: number): void {
    ex.problem(err);
    this.opts.gateway.refused({ requestId: ex.info.requestId, protocol: 'http', method, model, headers: ex.info.headers, requestBytes }, err);
  }

  private context(ex: Exchange, method: IngressMethod, model: string, version: string, requestBytes: number): RequestContext {
    const ctx = newRequestContext({
      requestId: ex.info.requestId,
      protocol: 'http',
      method,
      model,
      version,
      deadline: this.opts.gateway.deadlineFor(ex.info.timeoutMs),
      ...(ex.info.timeoutMs !== undefined ? { timeoutMs: ex.info.timeoutMs } : {}),
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
          ex.json(200, out.json, ctx.responseHeaders);
          gw.finish(ctx, undefined, out.json.length);
        } else {
          const json = Buffer.from(out.json, 'utf8');
          const full = Buffer.concat([json, ...out.binary]);
          ex.binary(json.length, full, ctx.responseHeaders);
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

  /** POST /v2/repository/index: body `{"repository_name"?: string, "ready"?: bool}` (may be empty). */
  private repositoryIndex(ex: Exchange, body: Buffer): void {
    let request: { repositoryName: string; ready: boolean };
    try {
      request = parseIndexRequest(body);
    } catch (err) {
      this.refuseCall(ex, 'RepositoryIndex', '', toInferenceError(err), body.length);
      return;
    }
    const gw = this.opts.gateway;
    const ctx = this.context(ex, 'RepositoryIndex', '', '', body.length);
    gw.forwardToAll(ctx, 'RepositoryIndex', encodeMessage('RepositoryIndexRequest', request)).then(
      (res) => this.answer(ex, ctx, res, () => JSON.stringify(messageToJsonObject('RepositoryIndexResponse', res).models)),
      (err: unknown) => this.fail(ex, ctx, toInferenceError(err)),
    );
  }

  private answer(ex: Exchange, ctx: RequestContext, res: Buffer, json: () => string): void {
    let text: string;
    try {
      text = json();
    } catch (err) {
      this.fail(ex, ctx, toInferenceError(err));
      return;
    }
    ex.json(200, text);
    this.opts.gateway.finish(ctx, undefined, res.length);
  }

  private fail(ex: Exchange, ctx: RequestContext, e: InferenceError): void {
    ex.problem(e);
    this.opts.gateway.finish(ctx, e, 0);
  }

  /** The per-model GET endpoints; ModelStatistics with model '' is every model's. */
  private modelCall(ex: Exchange, method: ModelMethod, model: string, version: string): void {
    const gw = this.opts.gateway;
    const ctx = this.context(ex, method, model, version, 0);
    const payload = encodeMessage(`${method}Request`, { name: model, version });
    const answer = method === 'ModelStatistics' && model === '' ? gw.forwardToAll(ctx, method, payload) : gw.forward(ctx, CallMethod[method], payload);
    answer.then(
      (res) => {
        if (method === 'ModelReady') {
          let ready: boolean;
          try {
            ready = decodeMessage<{ ready: boolean }>('ModelReadyResponse', res).ready;
          } catch (err) {
            this.fail(ex, ctx, toInferenceError(err));
            return;
          }
          if (ready) this.answer(ex, ctx, res, () => '{"ready":true}');
          else this.fail(ex, ctx, new InferenceError(InferenceErrorCode.NOT_READY, `model '${model}' is not ready`));
          return;
        }
        this.answer(ex, ctx, res, () => {
          if (method === 'ModelMetadata') return modelMetadataToJson(res);
          if (method === 'ModelConfig') return JSON.stringify(messageToJsonObject('ModelConfigResponse', res).config ?? {});
          return JSON.stringify(messageToJsonObject('ModelStatisticsResponse', res));
        });
      },
      (err: unknown) => {
        const e = toInferenceError(err);
        if (method === 'ModelReady' && (e.grpcStatus === GrpcStatus.NOT_FOUND || e.grpcStatus === GrpcStatus.UNAVAILABLE)) {
          this.fail(ex, ctx, new InferenceError(InferenceErrorCode.NOT_READY, `model '${model}' is not ready: ${e.message}`));
        } else {
          this.fail(ex, ctx, e);
        }
      },
    );
  }
}

/** The methods an endpoint answers (for 405's Allow), or undefined for no such endpoint. */
export function allowedMethods(url: string): string | undefined {
  if (/^\/v2(\/health\/(live|ready)|\/models\/stats|\/models\/[^/]+(\/versions\/[^/]+)?(\/ready|\/config|\/stats)?)?$/.test(url)) return 'GET';
  if (/^\/v2(\/models\/[^/]+(\/versions\/[^/]+)?\/infer|\/repository\/index)$/.test(url)) return 'POST';
  return undefined;
}

function parseIndexRequest(body: Buffer): { repositoryName: string; ready: boolean } {
  if (body.length === 0) return { repositoryName: '', ready: false };
  const doc = parseJson(body);
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new InferenceError(InferenceErrorCode.BAD_REQUEST, 'the repository index request must be a JSON object');
  const { repository_name: name = '', ready = false } = doc as Record<string, unknown>;
  if (typeof name !== 'string') throw new InferenceError(InferenceErrorCode.BAD_REQUEST, '"repository_name" must be a string');
  if (typeof ready !== 'boolean') throw new InferenceError(InferenceErrorCode.BAD_REQUEST, '"ready" must be a boolean');
  return { repositoryName: name, ready };
}

type UwsPort = ReturnType<typeof loadUws>['us_socket_local_port'];
