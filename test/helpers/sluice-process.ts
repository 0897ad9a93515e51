// Runs `sluice serve` in a child process with a generated config file and waits for its
// "ready" log line (which lists the bound endpoints). Every process is stopped in after().
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(ROOT, 'src', 'cli', 'main.ts');

export interface Endpoints {
  http?: string;
  grpc?: string;
  segment?: string;
  training?: string;
  models?: string;
  metrics?: string;
}

export interface SluiceProcess {
  child: ChildProcess;
  endpoints: Endpoints;
  /** Every log line so far (parsed JSON). */
  logs: Record<string, unknown>[];
  stop(): Promise<number | null>;
}

export async function startSluice(config: object, opts: { name: string; timeoutMs?: number; env?: Record<string, string> }): Promise<SluiceProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), `sluice-${opts.name}-`));
  const file = path.join(dir, 'config.yaml');
  writeFileSync(file, stringify(config));
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--config', file, '--grace-ms', '500'], {
    cwd: ROOT,
    env: { ...process.env, SLUICE_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const endpoints = await new Promise<Endpoints>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${opts.name} did not get ready: ${stderr}`)), opts.timeoutMs ?? 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          logs.push(rec);
          if (rec.msg === 'ready') {
            clearTimeout(timer);
            resolve(rec.endpoints as Endpoints);
          }
        } catch {
          // not a log line
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${opts.name} exited with ${code} before ready: ${stderr}`));
    });
  });
  return {
    child,
    endpoints,
    logs,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(kill);
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/** A loopback port with nothing listening (bound, then released). */
export async function closedPort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
