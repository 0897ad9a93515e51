// Debian's nginx as a gRPC reverse proxy (grpc_pass) on loopback: the baseline the sluice pair
// is compared with. One process, upstream keepalive, no access log, bodies kept in memory.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const NGINX = '/usr/sbin/nginx';

export function nginxAvailable(): boolean {
  return existsSync(NGINX) && spawnSync(NGINX, ['-v']).status === 0;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.destroy();
        resolve(true);
      });
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not listen on ${port}`);
}

export interface NginxProxy {
  address: string;
  pid: number;
  stop(): Promise<void>;
}

export interface NginxProxyOptions {
  /** Serve the listener over TLS 1.3 (AES-256-GCM) with this certificate and key (PEM files). */
  tls?: { certFile: string; keyFile: string };
  /** Reach the upstream over TLS 1.3 (`grpc_pass grpcs://`, certificate not verified: loopback). */
  upstreamTls?: boolean;
  /**
   * More gRPC services behind the same listener: path prefix (e.g. "/bench.TensorSink/") ->
   * upstream address. Streams of any length pass (grpc_pass does not buffer request bodies).
   */
  routes?: Readonly<Record<string, string>>;
}

export async function startNginxGrpcProxy(upstream: string, maxBodyBytes: number, opts: NginxProxyOptions = {}): Promise<NginxProxy> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-nginx-'));
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(dir, d));
  const port = await freePort();
  const routes = Object.entries(opts.routes ?? {});
  const scheme = opts.upstreamTls === true ? 'grpcs' : 'grpc';
  const extraUpstreams = routes.map(([, address], i) => `  upstream route${i} { server ${address}; keepalive 16; keepalive_requests 100000000; }`).join('\n');
  const extraLocations = routes
    .map(([prefix], i) => `    location ${prefix} {\n      client_max_body_size 0;\n      grpc_pass ${scheme}://route${i};\n      grpc_read_timeout 600s;\n      grpc_send_timeout 600s;\n    }`)
    .join('\n');
  // TLS 1.3 with one suite pinned (as sluice's segments use AES-256-GCM), both ways.
  const upstreamTls = opts.upstreamTls === true
    ? `  grpc_ssl_protocols TLSv1.3;\n  grpc_ssl_conf_command Ciphersuites TLS_AES_256_GCM_SHA384;\n  grpc_ssl_session_reuse on;\n`
    : '';
  const listenTls = opts.tls !== undefined
    ? `    ssl_certificate ${opts.tls.certFile};\n    ssl_certificate_key ${opts.tls.keyFile};\n    ssl_protocols TLSv1.3;\n    ssl_conf_command Ciphersuites TLS_AES_256_GCM_SHA384;\n`
    : '';
  const conf = `
worker_processes 1;
# One process (no master): its CPU time is the proxy's, for the per-request CPU column.
master_process off;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  client_max_body_size ${maxBodyBytes};
  client_body_buffer_size ${maxBodyBytes};
  # nginx closes a client connection after 1000 requests by default (GOAWAY), and h2load does
  # not reconnect: every call after the 1000th would fail. The long runs keep one connection.
  keepalive_requests 100000000;
  keepalive_timeout 600s;
${upstreamTls}  upstream models { server ${upstream}; keepalive 64; keepalive_requests 100000000; }
${extraUpstreams}
  server {
    listen 127.0.0.1:${port}${opts.tls !== undefined ? ' ssl' : ''} http2;
${listenTls}${extraLocations}
    location / {
      grpc_pass ${scheme}://models;
      grpc_read_timeout 60s;
    }
  }
}
`;
  writeFileSync(path.join(dir, 'nginx.conf'), conf);
  return runNginx(dir, port);
}

/** Starts nginx on a config already written to `dir`/nginx.conf and waits for its port. */
async function runNginx(dir: string, port: number): Promise<NginxProxy> {
  const child: ChildProcess = spawn(NGINX, ['-c', path.join(dir, 'nginx.conf'), '-p', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitForPort(port, 5000);
  return {
    address: `127.0.0.1:${port}`,
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The topology twin of a sluice pair: two nginx with TLS 1.3 (AES-256-GCM) between them. The
 * front takes h2c from the client and passes to the back over `grpcs://`; the back terminates
 * TLS and passes to the upstream. `routes` go through both hops, like the default location.
 */
export async function startNginxTlsPair(upstream: string, maxBodyBytes: number, opts: Pick<NginxProxyOptions, 'routes'> = {}): Promise<NginxPair> {
  const certDir = mkdtempSync(path.join(tmpdir(), 'sluice-nginx-tls-'));
  const certFile = path.join(certDir, 'cert.pem');
  const keyFile = path.join(certDir, 'key.pem');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=localhost', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
  if (made.status !== 0) throw new Error('openssl could not make the nginx pair certificate');
  const backRoutes = opts.routes ?? {};
  const back = await startNginxGrpcProxy(upstream, maxBodyBytes, { routes: backRoutes, tls: { certFile, keyFile } });
  const frontRoutes = Object.fromEntries(Object.keys(backRoutes).map((prefix) => [prefix, back.address]));
  const front = await startNginxGrpcProxy(back.address, maxBodyBytes, { routes: frontRoutes, upstreamTls: true }).catch(async (err: unknown) => {
    await back.stop();
    throw err;
  });
  return {
    address: front.address,
    pid: front.pid,
    pids: [front.pid, back.pid],
    async stop() {
      await front.stop();
      await back.stop();
      rmSync(certDir, { recursive: true, force: true });
    },
  };
}

export interface NginxPair extends NginxProxy {
  /** Both processes (front, back), for CPU accounting. */
  pids: number[];
}
