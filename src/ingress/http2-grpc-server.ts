// A lean gRPC server on node:http2 for the ingress's hot path. The ingress forwards serialized
// requests it reads only a few fields of, so a full gRPC server's machinery (per-call metadata
// objects, interceptor chains, codecs, channelz) was most of its CPU per call
// (docs/inference.md, "Measurements"). This speaks the gRPC over HTTP/2 protocol directly:
// content-type check, grpc-timeout as the call's deadline (enforced here), length-prefixed
// messages with the size limit checked on the prefix, grpc-status / percent-encoded
// grpc-message trailers (or trailers-only responses), RST_STREAM as cancellation, and HTTP/2
// flow control as backpressure. Paths it has no handler for go to `fallback` (e.g. a grpc-js
// server for the other services on the same port) or get UNIMPLEMENTED.
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import { GrpcStatus, type GrpcStatusCode } from '../kserve/status.ts';
import { ACCEPT_ENCODING, compressMessage, CompressionError, decompressMessage, type GrpcEncoding, parseGrpcEncoding, responseEncoding } from '../grpc/message-compression.ts';
import { COALESCE_MESSAGE_BYTES, framedMessage, GrpcDeframer, GrpcFramingError, grpcMessagePrefix } from './grpc-deframer.ts';
import { encodeGrpcMessage } from './grpc-metadata.ts';
import { parseGrpcTimeout } from './grpc-timeout.ts';
import { watchHttp2Session } from './http2-session-watch.ts';
import { capConnections, type ListenerLimits } from '../net/connection-limits.ts';

const { NGHTTP2_NO_ERROR } = http2.constants;

export type Trailers = Record<string, string>;

/** Reasons a call stops reading its request stream: the response buffer is full, or the handler asked. */
const PAUSE_DRAIN = 1;
const PAUSE_HANDLER = 2;

/** One call: the request side (headers, deadline, cancellation) and the response side. */
export class GrpcServerCall {
  readonly path: string;
  readonly headers: http2.IncomingHttpHeaders;
  /** Absolute deadline (Date.now() ms) from grpc-timeout; undefined when the client set none. */
  readonly deadline: number | undefined;
  /** The client's grpc-timeout in ms (undefined: none). */
  readonly timeoutMs: number | undefined;
  /** grpc-encoding of the request messages, and the one the responses go out in. */
  readonly requestEncoding: GrpcEncoding;
  readonly responseEncoding: GrpcEncoding;
  /** The request id (Http2GrpcServerOptions.requestIdOf); every final status carries it. */
  readonly requestId: string | undefined;
  private readonly stream: http2.ServerHttp2Stream;
  /** Compressed responses in order: each write waits for the ones before it. */
  private outbound: Promise<void> = Promise.resolve();
  private headersSent = false;
  private done = false;
  private trailers: Trailers | undefined;
  private timer: NodeJS.Timeout | undefined;
  private cancelListeners: (() => void)[] | undefined;
  /** Why the request stream is not being read (bits of PAUSE_*); read while 0. */
  private pausedBy = 0;

  constructor(
    stream: http2.ServerHttp2Stream,
    path: string,
    headers: http2.IncomingHttpHeaders,
    timeoutMs: number | undefined,
    encoding: { request: GrpcEncoding; response: GrpcEncoding } = { request: 'identity', response: 'identity' },
    requestId?: string,
  ) {
    this.requestId = requestId;
    this.stream = stream;
    this.path = path;
    this.headers = headers;
    this.timeoutMs = timeoutMs;
    this.requestEncoding = encoding.request;
    this.responseEncoding = encoding.response;
    this.deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    if (timeoutMs !== undefined) {
      this.timer = setTimeout(() => {
        this.finish(GrpcStatus.DEADLINE_EXCEEDED, `deadline of ${Math.ceil(timeoutMs)} ms exceeded`);
        this.fireCancel();
      }, timeoutMs);
    }
    stream.once('close', () => {
      if (this.done) return;
      // Reset by the client (or the connection went away) before we answered.
      this.done = true;
      clearTimeout(this.timer);
      this.fireCancel();
    });
  }

  /** True once the call has a final status or the client has gone away. */
  get finished(): boolean {
    return this.done;
  }

  /** Runs `fn` once if the client cancels, the connection drops or the deadline passes first. */
  onCancel(fn: () => void): void {
    (this.cancelListeners ??= []).push(fn);
  }

  private fireCancel(): void {
    const ls = this.cancelListeners;
    this.cancelListeners = undefined;
    if (ls !== undefined) for (const fn of ls) fn();
  }

  private respondHeaders(): void {
    this.headersSent = true;
    const headers: http2.OutgoingHttpHeaders = { ':status': 200, 'content-type': 'application/grpc', 'grpc-accept-encoding': ACCEPT_ENCODING };
    if (this.responseEncoding !== 'identity') headers['grpc-encoding'] = this.responseEncoding;
    this.stream.respond(headers, { waitForTrailers: true });
    this.stream.once('wantTrailers', () => this.stream.sendTrailers(this.trailers ?? { 'grpc-status': '0' }));
  }

  /**
   * Sends one response message. Returns false when the stream's buffer is full: the call then
   * stops reading the request stream until the client has taken the responses (backpressure).
   */
  sendMessage(msg: Buffer): boolean {
    if (this.done || this.stream.destroyed) return false;
    if (!this.headersSent) this.respondHeaders();
    const enc = this.responseEncoding;
    if (enc !== 'identity') {
      this.outbound = this.outbound.then(() =>
        compressMessage(enc, msg).then(
          (z) => {
            if (!this.stream.destroyed && !this.stream.writableEnded) this.writeMessage(z, true);
          },
          (err: Error) => this.finish(GrpcStatus.INTERNAL, `cannot compress the response: ${err.message}`),
        ),
      );
      return true;
    }
    return this.writeMessage(msg, false);
  }

  private writeMessage(msg: Buffer, compressed: boolean): boolean {
    let ok: boolean;
    if (compressed) ok = this.stream.write(framedMessage(msg, true));
    else if (msg.length <= COALESCE_MESSAGE_BYTES) ok = this.stream.write(framedMessage(msg));
    else {
      this.stream.write(grpcMessagePrefix(msg.length));
      ok = this.stream.write(msg);
    }
    if (!ok && (this.pausedBy & PAUSE_DRAIN) === 0) {
      this.pauseInput(PAUSE_DRAIN);
      this.stream.once('drain', () => this.resumeInput(PAUSE_DRAIN));
    }
    return ok;
  }

  /** Stops reading request messages (HTTP/2 flow control then holds the client back). */
  pauseInput(reason: number = PAUSE_HANDLER): void {
    if (this.pausedBy === 0) this.stream.pause();
    this.pausedBy |= reason;
  }

  /** Reads again once no reason to pause is left. */
  resumeInput(reason: number = PAUSE_HANDLER): void {
    if ((this.pausedBy & reason) === 0) return;
    this.pausedBy &= ~reason;
    if (this.pausedBy === 0 && !this.done) this.stream.resume();
  }

  /** The single response of a unary call and its OK status, in as few writes as possible. */
  reply(msg: Buffer, trailers?: Trailers): void {
    if (this.done || this.stream.destroyed) return;
    this.done = true;
    clearTimeout(this.timer);
    this.trailers = trailers === undefined ? { 'grpc-status': '0' } : { 'grpc-status': '0', ...trailers };
    const enc = this.responseEncoding;
    if (enc !== 'identity') {
      compressMessage(enc, msg).then(
        (z) => {
          if (this.stream.destroyed || this.stream.closed) return;
          this.respondHeaders();
          this.stream.end(framedMessage(z, true));
        },
        (err: Error) => {
          if (this.stream.destroyed || this.stream.closed) return;
          this.stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(GrpcStatus.INTERNAL), 'grpc-message': encodeGrpcMessage(`cannot compress the response: ${err.message}`) }, { endStream: true });
        },
      );
      return;
    }
    this.respondHeaders();
    if (msg.length <= COALESCE_MESSAGE_BYTES) this.stream.end(framedMessage(msg));
    else {
      this.stream.write(grpcMessagePrefix(msg.length));
      this.stream.end(msg);
    }
  }

  /** Ends the call with a status; `message` goes out percent-encoded as grpc-message. */
  finish(code: GrpcStatusCode, message = '', trailers?: Trailers): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    const status: Trailers = { 'grpc-status': String(code) };
    if (message !== '') status['grpc-message'] = encodeGrpcMessage(message);
    if (this.requestId !== undefined) status['x-request-id'] = this.requestId;
    if (trailers !== undefined) Object.assign(status, trailers);
    if (this.headersSent) {
      this.trailers = status;
      // After the compressed responses still being written (an identity call has none pending).
      if (this.responseEncoding === 'identity') stream.end();
      else void this.outbound.then(() => stream.end());
    } else {
      // Trailers-only response.
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...status }, { endStream: true });
      // The request may still be arriving (an oversized upload): tell the client to stop
      // sending, after the status (frames go out in order).
      if (!stream.readableEnded) stream.close(NGHTTP2_NO_ERROR);
    }
  }
}

/** A unary method: called once with the one request message. */
export interface UnaryMethod {
  readonly kind: 'unary';
  handle(call: GrpcServerCall, request: Buffer): void;
}

/** Request-stream methods (client or bidi streaming): messages as they arrive, then the end. */
export interface StreamingMethod {
  readonly kind: 'streaming';
  handle(call: GrpcServerCall): StreamingHandlers;
}

export interface StreamingHandlers {
  onMessage(msg: Buffer): void;
  /** The client half-closed the stream (every message has been delivered). */
  onEnd(): void;
}

export type GrpcMethod = UnaryMethod | StreamingMethod;

export interface Http2GrpcServerOptions {
  /** Largest request message (RESOURCE_EXHAUSTED above it). */
  maxMessageBytes: number;
  /** Streams for paths without a handler (e.g. relayed to another gRPC server). */
  fallback?: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void;
  /** Reports errors of sessions and streams (logging); they are handled already. */
  onError?: (err: Error) => void;
  /**
   * The request id of a call, from its headers: known from the start, so statuses the server
   * gives on its own (deadline, framing, compression) carry it in `x-request-id` too.
   */
  requestIdOf?: (headers: http2.IncomingHttpHeaders) => string;
  /** Handshake and idle deadlines and the connection cap (listeners.grpc); none when unset. */
  limits?: ListenerLimits;
}

/** HTTP/2 stream and connection windows: a whole large tensor may be in flight at once. */
const STREAM_WINDOW = 16 * 1024 * 1024;
const CONNECTION_WINDOW = 64 * 1024 * 1024;

export class Http2GrpcServer {
  readonly server: http2.Http2Server;
  private readonly opts: Http2GrpcServerOptions;
  private readonly methods = new Map<string, GrpcMethod>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  constructor(opts: Http2GrpcServerOptions) {
    this.opts = opts;
    this.server = http2.createServer({
      settings: { initialWindowSize: STREAM_WINDOW, enablePush: false, maxConcurrentStreams: 1000 },
      // Megabytes of buffered frames a session may hold (large tensors in flight).
      maxSessionMemory: 256,
    });
    // Responses are written whole; Nagle would hold their last segment for the next ACK.
    this.server.on('connection', (socket: Socket) => socket.setNoDelay(true));
    this.server.on('session', (session: http2.ServerHttp2Session) => this.adopt(session));
    if (opts.limits !== undefined) capConnections(this.server, opts.limits);
    this.server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
      joinRepeatedCredentials(headers, rawHeaders);
      this.onStream(stream, headers);
    });
    this.server.on('sessionError', (err: Error) => opts.onError?.(err));
  }

  /** Serves `path` (`/package.Service/Method`) with `method`. */
  register(path: string, method: GrpcMethod): this {
    this.methods.set(path, method);
    return this;
  }

  /** Listens on host:port (plaintext h2c); resolves with the bound port. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        const a = this.server.address();
        resolve(typeof a === 'object' && a !== null ? a.port : port);
      });
    });
  }

  /** Serves a connection accepted elsewhere (e.g. a TLS socket that negotiated h2). */
  acceptConnection(socket: Socket): void {
    this.server.emit('connection', socket);
  }

  /** Stops accepting connections; open sessions get GOAWAY and may finish their calls. */
  stopAccepting(): void {
    if (this.server.listening) this.server.close();
    for (const s of this.sessions) if (!s.closed) s.close();
  }

  /** Graceful close: GOAWAY, wait up to graceMs for open calls, then cut the connections. */
  async close(graceMs: number): Promise<void> {
    this.stopAccepting();
    const deadline = Date.now() + Math.max(0, graceMs);
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const s of this.sessions) s.destroy();
    this.sessions.clear();
  }

  private adopt(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    session.on('error', (err: Error) => this.opts.onError?.(err));
    if (this.opts.limits !== undefined) watchHttp2Session(session, this.opts.limits);
    try {
      session.setLocalWindowSize(CONNECTION_WINDOW);
    } catch {
      // The session is already closing.
    }
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', (err: Error) => this.opts.onError?.(err));
    const path = headers[':path'] ?? '';
    const contentType = headers['content-type'];
    if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) {
      // gRPC over HTTP/2: a non-gRPC content-type is an HTTP-level error (415).
      stream.respond({ ':status': 415, 'content-type': 'text/plain' }, { endStream: false });
      stream.end(`content-type must be application/grpc, not ${String(contentType ?? 'none')}\n`);
      return;
    }
    const method = this.methods.get(path);
    if (method === undefined) {
      if (this.opts.fallback !== undefined) {
        this.opts.fallback(stream, headers);
        return;
      }
      trailersOnly(stream, GrpcStatus.UNIMPLEMENTED, `unknown method ${path}`);
      return;
    }
    if (headers[':method'] !== 'POST') {
      trailersOnly(stream, GrpcStatus.UNIMPLEMENTED, `gRPC calls use POST, not ${String(headers[':method'])}`);
      return;
    }
    const timeout = parseGrpcTimeout(headers['grpc-timeout']);
    if (timeout === null) {
      trailersOnly(stream, GrpcStatus.INVALID_ARGUMENT, `malformed grpc-timeout ${JSON.stringify(headers['grpc-timeout'])}`);
      return;
    }
    const request = parseGrpcEncoding(headers['grpc-encoding']);
    if (request === undefined) {
      // gRPC's compression spec: an encoding the server lacks is UNIMPLEMENTED, with the ones it has.
      trailersOnly(stream, GrpcStatus.UNIMPLEMENTED, `grpc-encoding ${JSON.stringify(String(headers['grpc-encoding']).slice(0, 40))} is not supported (identity, deflate, gzip are)`, {
        'grpc-accept-encoding': ACCEPT_ENCODING,
      });
      return;
    }
    const call = new GrpcServerCall(stream, path, headers, timeout, { request, response: responseEncoding(request, headers['grpc-accept-encoding']) }, this.opts.requestIdOf?.(headers));
    const deframer = new GrpcDeframer(this.opts.maxMessageBytes, request !== 'identity');
    if (method.kind === 'unary') this.readUnary(stream, call, deframer, method);
    else this.readStreaming(stream, call, deframer, method);
  }

  private readUnary(stream: http2.ServerHttp2Stream, call: GrpcServerCall, deframer: GrpcDeframer, method: UnaryMethod): void {
    let request: Buffer | undefined;
    let compressed = false;
    let count = 0;
    const take = (msg: Buffer, isCompressed: boolean): void => {
      count++;
      request = msg;
      compressed = isCompressed;
    };
    stream.on('data', (chunk: Buffer) => {
      if (call.finished) return;
      try {
        deframer.push(chunk, take);
      } catch (err) {
        failFraming(call, err);
        return;
      }
      if (count > 1) call.finish(GrpcStatus.INVALID_ARGUMENT, 'a unary call carries exactly one request message; got more');
    });
    stream.once('end', () => {
      if (call.finished) return;
      if (!deframer.atBoundary) call.finish(GrpcStatus.INVALID_ARGUMENT, 'the request stream ended inside a message');
      else if (request === undefined) call.finish(GrpcStatus.INVALID_ARGUMENT, 'a unary call carries exactly one request message; got none');
      else if (!compressed) method.handle(call, request);
      else {
        decompressMessage(call.requestEncoding, request, this.opts.maxMessageBytes).then(
          (msg) => {
            if (!call.finished) method.handle(call, msg);
          },
          (err: unknown) => failFraming(call, err),
        );
      }
    });
  }

  private readStreaming(stream: http2.ServerHttp2Stream, call: GrpcServerCall, deframer: GrpcDeframer, method: StreamingMethod): void {
    const handlers = method.handle(call);
    // Compressed messages are inflated off the event loop; `inbound` keeps them in order.
    let inbound: Promise<void> | undefined;
    const max = this.opts.maxMessageBytes;
    const deliver = (msg: Buffer, compressed: boolean): void => {
      if (!compressed && inbound === undefined) {
        if (!call.finished) handlers.onMessage(msg);
        return;
      }
      const inflated = compressed ? decompressMessage(call.requestEncoding, msg, max) : Promise.resolve(msg);
      inbound = (inbound ?? Promise.resolve()).then(() =>
        inflated.then(
          (m) => {
            if (!call.finished) handlers.onMessage(m);
          },
          (err: unknown) => failFraming(call, err),
        ),
      );
    };
    stream.on('data', (chunk: Buffer) => {
      if (call.finished) return;
      try {
        deframer.push(chunk, deliver);
      } catch (err) {
        failFraming(call, err);
      }
    });
    stream.once('end', () => {
      if (call.finished) return;
      if (!deframer.atBoundary) call.finish(GrpcStatus.INVALID_ARGUMENT, 'the request stream ended inside a message');
      else if (inbound === undefined) handlers.onEnd();
      else {
        void inbound.then(() => {
          if (!call.finished) handlers.onEnd();
        });
      }
    });
  }
}

/**
 * node:http2 keeps only the first of a repeated `authorization` header (a single-value field);
 * join the repeats with ", " as for any other field, so the gates see a request that carried
 * two credentials instead of silently using one of them.
 */
function joinRepeatedCredentials(headers: http2.IncomingHttpHeaders, raw: readonly string[] | undefined): void {
  if (raw === undefined) return;
  let values: string[] | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i] !== 'authorization') continue;
    (values ??= []).push(raw[i + 1] as string);
  }
  if (values !== undefined && values.length > 1) headers.authorization = values.join(', ');
}

function failFraming(call: GrpcServerCall, err: unknown): void {
  if (err instanceof GrpcFramingError || err instanceof CompressionError) call.finish(err.status, err.message);
  else call.finish(GrpcStatus.INTERNAL, (err as Error).message);
}

/** A status-only answer to a stream that never got a GrpcServerCall. */
export function trailersOnly(stream: http2.ServerHttp2Stream, code: GrpcStatusCode, message: string, extra?: Record<string, string>): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message), ...extra }, { endStream: true });
  if (!stream.readableEnded) stream.close(NGHTTP2_NO_ERROR);
}
