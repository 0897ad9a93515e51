// Serves a grpc-js server on plaintext host:port through sluice's own node:net listener instead
// of bindAsync, so the port gets the listener limits grpc-js lacks: the connection cap, and a
// deadline for the HTTP/2 preface (raw TCP that sends nothing, or half a preface, is closed).
// Idle sessions are grpc-js's own 'grpc.max_connection_idle_ms' (set by the caller).
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { ServerCredentials, type Server } from '@grpc/grpc-js';
import { capConnections, type ListenerLimits } from '../net/connection-limits.ts';

/** The client connection preface (24 bytes) and the header of its SETTINGS frame (9). */
const PREFACE_AND_SETTINGS_BYTES = 24 + 9;

export interface PlaintextBinding {
  port: number;
  stopAccepting(): void;
  close(): Promise<void>;
}

export async function serveGrpcPlaintext(server: Server, host: string, port: number, limits: ListenerLimits): Promise<PlaintextBinding> {
  const injector = server.createConnectionInjector(ServerCredentials.createInsecure());
  const listener = createServer({ noDelay: true });
  capConnections(listener, limits);
  const sockets = new Set<Socket>();
  listener.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // grpc-js reads the socket natively; its byte count still shows whether the preface came.
    const timer = setTimeout(() => {
      if (socket.destroyed || socket.bytesRead >= PREFACE_AND_SETTINGS_BYTES) return;
      limits.onRefused?.('handshake_timeout');
      socket.destroy();
    }, limits.handshakeTimeoutMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    injector.injectConnection(socket);
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(port, host, () => {
      listener.off('error', reject);
      resolve();
    });
  });
  return {
    port: (listener.address() as AddressInfo).port,
    stopAccepting: () => {
      if (listener.listening) listener.close();
    },
    async close() {
      if (listener.listening) listener.close();
      for (const s of sockets) s.destroy();
      injector.destroy();
    },
  };
}
