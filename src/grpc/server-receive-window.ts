// grpc-js servers advertise HTTP/2's default 64 KiB receive window and have no option to change
// it, so a client streaming 1 MiB messages (a training Push) waits for a WINDOW_UPDATE every
// 64 KiB, one event-loop turn of the server each: ~50 MB/s on a loaded node where the link
// behind it carries 1 GB/s. This widens the window of every connection the server accepts:
// the stream window through the HTTP/2 settings it sends, the connection window right after.
// It reaches into two grpc-js internals (pinned 1.14.x: `commonServerOptions`, the options of
// every http2 server it creates, and `createHttp2Server`) and refuses to start when they moved.
import type * as grpc from '@grpc/grpc-js';
import type { Http2Server, Http2Session, ServerOptions } from 'node:http2';

interface GrpcServerInternals {
  commonServerOptions?: ServerOptions;
  createHttp2Server?: (...args: unknown[]) => Http2Server;
}

/** Call before the server is bound (or a connection injector is made). */
export function widenServerReceiveWindow(server: grpc.Server, windowBytes: number): void {
  if (!Number.isInteger(windowBytes) || windowBytes < 65_535 || windowBytes > 2 ** 31 - 1) {
    throw new RangeError(`windowBytes must be an integer in [65535, 2^31-1], got ${windowBytes}`);
  }
  const internals = server as unknown as GrpcServerInternals;
  const options = internals.commonServerOptions;
  const create = internals.createHttp2Server;
  if (options === undefined || typeof create !== 'function') {
    throw new Error('@grpc/grpc-js internals changed (commonServerOptions/createHttp2Server): update src/grpc/server-receive-window.ts');
  }
  options.settings = { ...options.settings, initialWindowSize: windowBytes };
  internals.createHttp2Server = (...args: unknown[]) => {
    const h2 = create.apply(server, args);
    h2.on('session', (session: Http2Session) => session.setLocalWindowSize(windowBytes));
    return h2;
  };
}
