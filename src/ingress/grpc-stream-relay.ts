// Relays whole HTTP/2 gRPC streams to another gRPC server on a unix socket. The ingress's lean
// server handles the inference service itself and relays every other path (grpc.health.v1,
// anything unknown) to a grpc-js server only this process can
// reach, so all of them share port 8001 and its TLS listener. Headers, messages and trailers
// pass through unchanged (trailers-only answers too); a reset on either side resets the other;
// data moves with pipe(), so HTTP/2 flow control reaches from the client to the inner server.
import http2 from 'node:http2';
import net from 'node:net';
import { GrpcStatus } from '../kserve/status.ts';
import { trailersOnly } from './http2-grpc-server.ts';

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** Hop-by-hop and pseudo headers are the relay's own; everything else is the call's. */
function endToEnd(headers: http2.IncomingHttpHeaders, keep: readonly string[]): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const k in headers) {
    if (k.charCodeAt(0) === 58 /* ':' */ ? !keep.includes(k) : k === 'connection') continue;
    out[k] = headers[k];
  }
  return out;
}

const STREAM_WINDOW = 16 * 1024 * 1024;
const CONNECTION_WINDOW = 64 * 1024 * 1024;

const REQUEST_PSEUDO = [':method', ':path', ':authority', ':scheme'];
const RESPONSE_PSEUDO = [':status'];

export class GrpcStreamRelay {
  private readonly socketPath: string;
  private session: http2.ClientHttp2Session | undefined;

  constructor(socketPath: string) {
    this.socketPath = socketPath;
  }

  private connect(): http2.ClientHttp2Session {
    const s = this.session;
    if (s !== undefined && !s.closed && !s.destroyed) return s;
    const session = http2.connect('http://localhost', {
      createConnection: () => net.connect(this.socketPath),
      settings: { initialWindowSize: STREAM_WINDOW, enablePush: false },
      maxSessionMemory: 256,
    });
    const drop = (): void => {
      if (this.session === session) this.session = undefined;
    };
    // The connection window opens as wide as the streams' (16 MiB): at HTTP/2's 64 KiB default, a
    // Subscribe or Pull stream of 1 MiB messages waits for a WINDOW_UPDATE every 64 KiB.
    session.once('connect', () => session.setLocalWindowSize(CONNECTION_WINDOW));
    session.on('error', drop);
    session.on('goaway', drop);
    session.on('close', drop);
    session.unref();
    this.session = session;
    return session;
  }

  relay(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    let upstream: http2.ClientHttp2Stream;
    try {
      upstream = this.connect().request(endToEnd(headers, REQUEST_PSEUDO), { endStream: false });
    } catch (err) {
      trailersOnly(stream, GrpcStatus.UNAVAILABLE, `service unavailable: ${(err as Error).message}`);
      return;
    }
    let responded = false;
    let trailers: http2.OutgoingHttpHeaders | undefined;
    upstream.on('error', () => undefined);
    stream.pipe(upstream);
    upstream.on('response', (h: http2.IncomingHttpHeaders, flags: number) => {
      if (stream.destroyed) return;
      responded = true;
      if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) {
        stream.respond(endToEnd(h, RESPONSE_PSEUDO), { endStream: true });
        return;
      }
      stream.respond(endToEnd(h, RESPONSE_PSEUDO), { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers(trailers ?? { 'grpc-status': String(GrpcStatus.INTERNAL), 'grpc-message': 'the service ended the call without a status' }));
      upstream.pipe(stream);
    });
    upstream.on('trailers', (t: http2.IncomingHttpHeaders) => {
      trailers = endToEnd(t, []);
    });
    upstream.once('close', () => {
      if (stream.destroyed || stream.closed) return;
      if (!responded) trailersOnly(stream, GrpcStatus.UNAVAILABLE, 'the service closed the call without an answer');
      else if (upstream.rstCode !== undefined && upstream.rstCode !== NGHTTP2_NO_ERROR && trailers === undefined) stream.close(upstream.rstCode);
    });
    stream.once('close', () => {
      if (!upstream.closed && !upstream.destroyed) upstream.close(NGHTTP2_CANCEL);
    });
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }
}
