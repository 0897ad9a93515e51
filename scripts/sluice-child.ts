// Runs `sluice serve` in a child process with a generated config file and waits for its
// "ready" log line (which lists the bound endpoints). Used by the end-to-end tests and the
// benchmarks, which run every server in its own process.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

/**
 * A loopback port with nothing listening. It is taken below the kernel's ephemeral range
 * (ip_local_port_range), where no listen(0) of a test running beside this one can be given it:
 * a port from the range, bound and released, was once handed to another test's model server
 * while this one still counted on it being dead (CI, the "ghost" route of test/e2e). Checked
 * free by binding it; falls back to a released ephemeral port if none below the range is.
 */
export async function closedPort(): Promise<number> {
  const { createServer } = await import('node:net');
  const tryListen = (port: number): Promise<number | undefined> =>
    new Promise((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(undefined));
      s.listen(port, '127.0.0.1', () => {
        const got = (s.address() as { port: number }).port;
        s.close(() => resolve(got));
      });
    });
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {
    // not Linux: the fallback below
  }
  // 10000 ports under the range, above the well-known ones and sluice's own (8000-8003, 9090).
  const from = Math.max(10_000, low - 10_000);
  for (let i = 0; i < 20 && from < low; i++) {
    const port = from + Math.floor(Math.random() * (low - from));
    if ((await tryListen(port)) === port) return port;
  }
  return (await tryListen(0))!;
}
