// The HTTP listener's TLS front for what uWebSockets.js cannot do natively (client certificates
// checked against the allowlist, a TLS 1.3 floor): node:tls terminates, and each accepted socket
// is spliced to the plain uWS app on a loopback port. Without mTLS, uWS's own SSLApp is used
// instead (see uwsSslOptions), which is faster.
import { connect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { SecureListener, type SecureListenerOptions } from './secure-listener.ts';

export interface HttpsFront {
  listener: SecureListener;
  close(): Promise<void>;
}

/** `target`: the plain app's loopback address, or (preferred: no other local user can reach it) its unix socket. */
export async function startHttpsFront(opts: Omit<SecureListenerOptions, 'alpn'>, target: { host: string; port: number } | { path: string }): Promise<HttpsFront> {
  const listener = await SecureListener.listen({ ...opts, alpn: ['http/1.1'] });
  const upstreams = new Set<Socket>();
  listener.on('connection', (client: TLSSocket) => {
    const upstream = 'path' in target ? connect({ path: target.path }) : connect({ host: target.host, port: target.port, noDelay: true });
    upstreams.add(upstream);
    client.setNoDelay(true);
    const teardown = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.once('close', () => {
      upstreams.delete(upstream);
      client.destroy();
    });
    upstream.on('error', teardown);
    client.once('close', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return {
    listener,
    async close() {
      await listener.close();
      for (const u of upstreams) u.destroy();
    },
  };
}
