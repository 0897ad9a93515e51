// Runs `sluice serve` in a child process with a generated config file and waits for its
// "ready" log line (which lists the bound endpoints). Used by the end-to-end tests and the
// benchmarks, which run every server in its own process.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { Endpoints } from '../src/node/sluice-node.ts';
import { SLUICE_V8_FLAGS } from '../src/node/v8-flags.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CLI = path.join(ROOT, 'src', 'cli', 'main.ts');

/** What the child's "ready" log line lists: the node's bound addresses. */
export type { Endpoints };

export interface SluiceProcess {
  child: ChildProcess;
  endpoints: Endpoints;
  /** Every log line so far (parsed JSON). */
  logs: Record<string, unknown>[];
  /** Every stdout line so far, as written (for strict parsing). */
  lines: string[];
  /** SIGTERM, then SIGKILL if it has not exited after `killAfterMs` (default 5 s); the exit code. */
  stop(killAfterMs?: number): Promise<number | null>;
}

export async function startSluice(
  config: object,
  opts: {
    name: string;
    timeoutMs?: number;
    env?: Record<string, string>;
    logLevel?: string;
    nodeArgs?: string[];
    graceMs?: number;
    /** Every stdout line that is not a JSON log record (e.g. V8's --trace-gc lines). */
    onOtherLine?: (line: string) => void;
  },
): Promise<SluiceProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), `sluice-${opts.name}-`));
  const file = path.join(dir, 'config.yaml');
  writeFileSync(file, stringify(config));
  const child = spawn(process.execPath, [...SLUICE_V8_FLAGS, ...(opts.nodeArgs ?? []), '--import', 'tsx', CLI, 'serve', '--config', file, '--grace-ms', String(opts.graceMs ?? 500)], {
    cwd: ROOT,
    env: { ...process.env, SLUICE_LOG_LEVEL: opts.logLevel ?? 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const lines: string[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  // 'close', not 'exit': by then every log line the child wrote has been read into `logs`.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const endpoints = await new Promise<Endpoints>((resolve, reject) => {
    let buf = '';
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const timer = setTimeout(() => {
      // Never leave a half-started server behind on a failed start.
      child.kill('SIGKILL');
      reject(new Error(`${opts.name} did not get ready within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          logs.push(rec);
          if (rec.msg === 'ready') {
            clearTimeout(timer);
            resolve(rec.endpoints as Endpoints);
          }
        } catch {
          opts.onOtherLine?.(line);
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${opts.name} exited with ${code} before ready: ${stderr}`));
    });
  }).catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  return {
    child,
    endpoints,
    logs,
    lines,
    async stop(killAfterMs = 5000) {
      if (child.exitCode === null) child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
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
