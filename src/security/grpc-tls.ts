// Serves a grpc-js Server over a SecureListener: sluice terminates TLS itself and injects each
// accepted (and, with mTLS, allowlisted) socket into grpc-js, which speaks h2 over it. Compared
// with grpc.ServerCredentials.createSsl(ca, pairs, checkClientCertificate) this keeps the cipher
// allowlist and version floor explicit, refuses unknown certificates at the handshake (before any
// call), audits failed handshakes, and drops a revoked certificate's live connections. Calls still
// see the peer certificate through call.getAuthContext().
import { ServerCredentials, type Server } from '@grpc/grpc-js';
import type { TLSSocket } from 'node:tls';
import { SecureListener, type SecureListenerOptions } from './secure-listener.ts';

export interface GrpcTlsBinding {
  listener: SecureListener;
  port: number;
  stopAccepting(): void;
  close(): Promise<void>;
}

export async function serveGrpcOverTls(server: Server, opts: Omit<SecureListenerOptions, 'alpn'>): Promise<GrpcTlsBinding> {
  const injector = server.createConnectionInjector(ServerCredentials.createInsecure());
  const listener = await SecureListener.listen({ ...opts, alpn: ['h2'] });
  listener.on('connection', (socket: TLSSocket) => injector.injectConnection(socket));
  return {
    listener,
    port: listener.address.port,
    stopAccepting: () => listener.stopAccepting(),
    async close() {
      await listener.close();
      injector.destroy();
    },
  };
}

/**
 * The same TLS listener for a server that takes accepted connections itself (the ingress's
 * node:http2 gRPC server): each allowlisted h2 socket is handed to `accept`.
 */
export async function serveConnectionsOverTls(accept: (socket: TLSSocket) => void, opts: Omit<SecureListenerOptions, 'alpn'>): Promise<GrpcTlsBinding> {
  const listener = await SecureListener.listen({ ...opts, alpn: ['h2'] });
  listener.on('connection', accept);
  return {
    listener,
    port: listener.address.port,
    stopAccepting: () => listener.stopAccepting(),
    close: () => listener.close(),
  };
}
