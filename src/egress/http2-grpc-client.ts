// A lean gRPC unary client over node:http2 for the egress. The egress forwards serialized
// requests it never looks into, so it needs none of a full gRPC client's machinery (name
// resolution, load balancing, interceptors, channelz, retries); dropping it roughly halves the
// egress's CPU per call (docs/inference.md, "Measurements"). It speaks the gRPC over HTTP/2
// wire protocol: one length-prefixed message each way, grpc-timeout for the deadline,
// grpc-status / grpc-message in the trailers (or in trailers-only responses).
import http2 from 'node:http2';
import net from 'node:net';
import { GrpcStatus, type GrpcStatusCode, isGrpcStatusCode } from '../kserve/status.ts';

export interface Http2GrpcClientOptions {
  /** Largest response message accepted. */
  maxMessageBytes: number;
  /** Connection attempts fail after this long (default 3000 ms). */
  connectTimeoutMs?: number;
}

export interface GrpcCallError {
  status: GrpcStatusCode;
  details: string;
}

export interface GrpcUnaryCall<T = Buffer> {
  readonly result: Promise<T>;
  cancel(): void;
}

/**
 * A response message as the DATA chunks it arrived in (prefix removed): forwarded as a gather
 * list, a large response is never copied into one buffer (nor allocated as one).
 */
export interface MessageParts {
  readonly parts: readonly Buffer[];
  readonly length: number;
}

/** Strips the 5-byte gRPC prefix from received chunks; a string says what is wrong. */
export function unframe(chunks: readonly Buffer[], received: number): MessageParts | string {
  if (received < 5) return 'upstream sent no response message';
  const prefix = chunks[0]!.length >= 5 ? chunks[0]! : Buffer.concat(chunks, 5);
  if (prefix[0] !== 0) return 'upstream sent a compressed message';
  const len = prefix.readUInt32BE(1);
  if (len !== received - 5) return 'upstream sent a response whose length does not match its frame';
  const parts: Buffer[] = [];
  let skip = 5;
  for (const c of chunks) {
    if (skip >= c.length) {
      skip -= c.length;
      continue;
    }
    parts.push(skip === 0 ? c : c.subarray(skip));
    skip = 0;
  }
  return { parts, length: len };
}

const { NGHTTP2_CANCEL } = http2.constants;
/** Requests up to this size are copied behind their prefix (one write instead of two). */
const SMALL_MESSAGE = 64 * 1024;

/** grpc-timeout value: at most 8 digits and a unit. */
export function grpcTimeoutHeader(ms: number): string {
  const t = Math.max(1, Math.ceil(ms));
  return t < 1e8 ? `${t}m` : `${Math.min(99_999_999, Math.ceil(t / 1000))}S`;
}

/** grpc-message is percent-encoded (gRPC over HTTP/2 spec). */
function decodeGrpcMessage(v: string | string[] | undefined): string {
  const s = Array.isArray(v) ? v.join(',') : (v ?? '');
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function statusOf(headers: http2.IncomingHttpHeaders): GrpcStatusCode | undefined {
  const v = headers['grpc-status'];
  if (v === undefined) return undefined;
  const n = Number(v);
  return isGrpcStatusCode(n) ? n : GrpcStatus.UNKNOWN;
}

export class Http2GrpcClient {
  readonly address: string;
  private readonly opts: Http2GrpcClientOptions;
  private session: http2.ClientHttp2Session | undefined;
  private closed = false;

  constructor(address: string, opts: Http2GrpcClientOptions) {
    this.address = address;
    this.opts = opts;
  }

  private connect(): http2.ClientHttp2Session {
    if (this.session !== undefined && !this.session.closed && !this.session.destroyed) return this.session;
    const session = http2.connect(`http://${this.address}`, {
      // Large tensors: let a whole message be in flight without waiting on window updates.
      settings: { initialWindowSize: 16 * 1024 * 1024, enablePush: false },
      maxSessionMemory: 256,
      // RPC traffic: a small write (a window update, the next request) must not wait for an ACK.
      createConnection: (authority: URL) => {
        const socket = net.connect({ host: authority.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(authority.port) });
        socket.setNoDelay(true);
        return socket;
      },
    });
    const drop = (): void => {
      if (this.session === session) this.session = undefined;
    };
    session.once('connect', () => session.setLocalWindowSize(64 * 1024 * 1024));
    session.on('error', drop);
    session.on('goaway', drop);
    session.on('close', drop);
    const timer = setTimeout(() => {
      if (!session.connecting) return;
      session.destroy(new Error(`connect timed out after ${this.opts.connectTimeoutMs ?? 3000} ms`));
    }, this.opts.connectTimeoutMs ?? 3000);
    timer.unref();
    session.once('connect', () => clearTimeout(timer));
    session.unref();
    this.session = session;
    return session;
  }

  /** Calls `path` with a serialized request; resolves with the response in one buffer. */
  unary(path: string, payload: Buffer, deadline: number, metadata: Record<string, string>): GrpcUnaryCall {
    const call = this.unaryParts(path, payload, deadline, metadata);
    return { result: call.result.then((m) => (m.parts.length === 1 ? m.parts[0]! : Buffer.concat(m.parts as Buffer[], m.length))), cancel: call.cancel };
  }

  /** Calls `path` with a serialized request; resolves with the response's parts; rejects with a GrpcCallError. */
  unaryParts(path: string, payload: Buffer, deadline: number, metadata: Record<string, string>): GrpcUnaryCall<MessageParts> {
    let resolve!: (b: MessageParts) => void;
    let reject!: (e: GrpcCallError) => void;
    const result = new Promise<MessageParts>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    if (this.closed) {
      reject({ status: GrpcStatus.UNAVAILABLE, details: 'client closed' });
      return { result, cancel: () => undefined };
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      reject({ status: GrpcStatus.DEADLINE_EXCEEDED, details: 'deadline passed before the call' });
      return { result, cancel: () => undefined };
    }
    let settled = false;
    const fail = (status: GrpcStatusCode, details: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject({ status, details });
    };

    let stream: http2.ClientHttp2Stream;
    try {
      stream = this.connect().request(
        {
          ':method': 'POST',
          ':path': path,
          'content-type': 'application/grpc',
          te: 'trailers',
          'grpc-timeout': grpcTimeoutHeader(remaining),
          'user-agent': 'sluice-egress',
          ...metadata,
        },
        { endStream: false },
      );
    } catch (err) {
      fail(GrpcStatus.UNAVAILABLE, (err as Error).message);
      return { result, cancel: () => undefined };
    }
    const timer = setTimeout(() => {
      fail(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded');
      if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
    }, remaining);

    let responded = false;
    let status: GrpcStatusCode | undefined;
    let message = '';
    const chunks: Buffer[] = [];
    let received = 0;
    stream.on('response', (headers) => {
      responded = true;
      const http = Number(headers[':status']);
      if (http !== 200) {
        fail(http === 503 || http === 502 || http === 504 ? GrpcStatus.UNAVAILABLE : GrpcStatus.UNKNOWN, `upstream answered HTTP ${http}`);
        return;
      }
      // A trailers-only response carries the status in the headers.
      status = statusOf(headers);
      if (status !== undefined) message = decodeGrpcMessage(headers['grpc-message']);
    });
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > this.opts.maxMessageBytes + 5) {
        fail(GrpcStatus.RESOURCE_EXHAUSTED, `response larger than ${this.opts.maxMessageBytes} bytes`);
        stream.close(NGHTTP2_CANCEL);
        return;
      }
      chunks.push(chunk);
    });
    stream.on('trailers', (trailers) => {
      status = statusOf(trailers) ?? status;
      message = decodeGrpcMessage(trailers['grpc-message']);
    });
    stream.on('error', (err: Error) => {
      fail(GrpcStatus.UNAVAILABLE, responded ? `stream failed: ${err.message}` : err.message);
    });
    stream.on('close', () => {
      if (settled) return;
      if (status === undefined) {
        fail(GrpcStatus.UNAVAILABLE, responded ? 'upstream closed the stream without a status' : 'connection to the upstream failed');
        return;
      }
      if (status !== GrpcStatus.OK) {
        fail(status, message);
        return;
      }
      const framed = unframe(chunks, received);
      if (typeof framed === 'string') {
        fail(GrpcStatus.INTERNAL, framed);
        return;
      }
      settled = true;
      clearTimeout(timer);
      resolve(framed);
    });

    // gRPC message prefix: no compression, 4-byte big-endian length. Small messages go out as
    // one buffer (one DATA frame); large ones are not copied.
    if (payload.length <= SMALL_MESSAGE) {
      const msg = Buffer.allocUnsafe(5 + payload.length);
      msg[0] = 0;
      msg.writeUInt32BE(payload.length, 1);
      payload.copy(msg, 5);
      stream.end(msg);
    } else {
      const prefix = Buffer.allocUnsafe(5);
      prefix[0] = 0;
      prefix.writeUInt32BE(payload.length, 1);
      stream.write(prefix);
      stream.end(payload);
    }
    return {
      result,
      cancel: () => {
        fail(GrpcStatus.CANCELLED, 'cancelled by the caller');
        if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
      },
    };
  }

  close(): void {
    this.closed = true;
    this.session?.close();
    this.session = undefined;
  }
}
