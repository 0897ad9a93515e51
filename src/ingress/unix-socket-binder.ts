// A ConnectionBinder on a private unix socket: the TypeScript gRPC server behind the native
// engine's ingress (which owns the TCP port and relays every call it does not serve itself).
import { chmodSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import type { ConnectionBinder } from './http2-grpc-ingress.ts';

export function unixSocketBinder(socketPath: string, listener: string): ConnectionBinder {
  return async (accept) => {
    const open = new Set<Socket>();
    const server = createServer({ pauseOnConnect: false }, (socket) => {
      open.add(socket);
      socket.once('close', () => open.delete(socket));
      accept(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // Only this user may reach it (the socket's directory is private too).
    chmodSync(socketPath, 0o600);
    let closed: Promise<void> | undefined;
    const stopAccepting = (): Promise<void> => (closed ??= new Promise<void>((resolve) => server.close(() => resolve())));
    return {
      port: 0,
      logFields: { listener, socket: socketPath },
      stopAccepting: () => void stopAccepting(),
      // The gRPC server has had its grace period by now; the engine's relay connections stay open
      // until the engine stops, so they are cut here rather than waited for.
      close: async () => {
        const done = stopAccepting();
        for (const socket of open) socket.destroy();
        await done;
      },
    };
  };
}
