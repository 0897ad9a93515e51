// The operations listener (default port 8002): Prometheus exposition at /metrics and plain-HTTP
// probes for orchestrators. The probes live here as well as on the ingress because a kubelet
// cannot present a client certificate when the client listeners require mTLS, and a
// training-only node runs no ingress at all. Low rate, so node:http is enough.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { capConnections, handshakeDeadline, type ListenerLimits } from '../net/connection-limits.ts';
import type { HealthModel } from './health.ts';
import type { SluiceMetrics } from './metrics.ts';

export interface MetricsServerOptions {
  host: string;
  port: number;
  metrics: SluiceMetrics;
  health: HealthModel;
  /** Called when a scrape fails (a collect() threw); the scrape answers 500. */
  onError?: (err: unknown) => void;
  /** Connection limits (listeners.metrics): a request must start within handshakeTimeoutMs of connecting. */
  limits?: ListenerLimits;
}

export const OPS_PATHS = {
  metrics: '/metrics',
  live: '/livez',
  ready: '/readyz',
  detail: '/health',
} as const;

export class MetricsServer {
  private readonly server: Server;
  private bound: { host: string; port: number } | undefined;

  constructor(private readonly opts: MetricsServerOptions) {
    this.server = createServer((req, res) => void this.handle(req, res));
    // Scrapers and probes reconnect freely; do not let idle sockets hold a drain open.
    this.server.keepAliveTimeout = 5_000;
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 15_000;
    const limits = opts.limits;
    if (limits !== undefined) {
      capConnections(this.server, limits);
      // Node's headersTimeout only runs once a request has begun; a socket that sends nothing
      // would stay until the kernel gives up. The first request's headers end the deadline.
      const pending = new WeakMap<Socket, () => void>();
      this.server.on('connection', (socket: Socket) => pending.set(socket, handshakeDeadline(socket, limits.handshakeTimeoutMs, () => limits.onRefused?.('handshake_timeout'))));
      this.server.on('request', (req: IncomingMessage) => pending.get(req.socket)?.());
      this.server.keepAliveTimeout = Math.min(this.server.keepAliveTimeout, limits.idleTimeoutMs);
    }
  }

  async listen(): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    const a = this.server.address() as AddressInfo;
    this.bound = { host: a.address, port: a.port };
    return this.bound;
  }

  get address(): { host: string; port: number } {
    if (this.bound === undefined) throw new Error('metrics server is not listening');
    return this.bound;
  }

  /** Stops accepting and closes idle keep-alive sockets; in-flight scrapes finish. */
  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const force = setTimeout(() => this.server.closeAllConnections(), 2_000);
    force.unref();
    await closed;
    clearTimeout(force);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    const { health, metrics } = this.opts;
    switch (path) {
      case OPS_PATHS.metrics: {
        try {
          const body = await metrics.render();
          res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : body);
        } catch (err) {
          this.opts.onError?.(err);
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics collection failed\n');
        }
        return;
      }
      case OPS_PATHS.live:
        text(res, health.live ? 200 : 503, health.live ? 'live' : `not live: ${health.fatalReason ?? ''}`);
        return;
      case OPS_PATHS.ready: {
        const ready = health.ready();
        text(res, ready ? 200 : 503, ready ? 'ready' : `not ready: ${health.notReadyReason()}`);
        return;
      }
      case OPS_PATHS.detail: {
        const snap = health.snapshot();
        res
          .writeHead(snap.ready ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' })
          .end(JSON.stringify({ ...snap, reason: health.notReadyReason() }));
        return;
      }
      default:
        text(res, 404, `not found; try ${Object.values(OPS_PATHS).join(', ')}`);
    }
  }
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end(`${body}\n`);
}
