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
  const extraUpstreams = routes.map(([, address], i) => `  upstream route${i} { server ${address}; keepalive 16; }`).join('\n');
  const extraLocations = routes
    .map(([prefix], i) => `    location ${prefix} {\n      client_max_body_size 0;\n      grpc_pass grpc://route${i};\n      grpc_read_timeout 600s;\n      grpc_send_timeout 600s;\n    }`)
    .join('\n');
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
  upstream models { server ${upstream}; keepalive 64; }
${extraUpstreams}
  server {
    listen 127.0.0.1:${port} http2;
${extraLocations}
    location / {
      grpc_pass grpc://models;
      grpc_read_timeout 60s;
    }
  }
}
`;
  writeFileSync(path.join(dir, 'nginx.conf'), conf);
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
