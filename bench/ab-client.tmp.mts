import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { RawGrpcClient } from './grpc-load.ts';
function cpuUs(pid: number): number { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) * 10_000; }
const size = Number(process.argv[2] ?? 200);
const body = Buffer.alloc(size, 1);
const servers: Record<string, { pid: number; port: number }> = {};
for (const kind of ['lean', 'grpcjs']) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/ab-server.tmp.mts', kind], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((r) => child.stdout!.once('data', (d) => r(Number(String(d).trim()))));
  servers[kind] = { pid: child.pid!, port };
}
for (const round of [1, 2, 3, 4]) for (const [kind, s] of Object.entries(servers)) {
  const c = new RawGrpcClient(`127.0.0.1:${s.port}`);
  for (let i = 0; i < 300; i++) await c.call('/t.T/E', body);
  const c0 = cpuUs(s.pid); const t0 = performance.now(); const N = 1500;
  const inflight = 4; let done = 0;
  await Promise.all(Array.from({ length: inflight }, async () => { while (done < N) { done++; await c.call('/t.T/E', body); } }));
  console.log(round, kind.padEnd(7), `server CPU ${((cpuUs(s.pid) - c0) / N).toFixed(0)} us/call`, `${(N / ((performance.now() - t0) / 1000)).toFixed(0)} calls/s`);
  c.close();
}
for (const s of Object.values(servers)) process.kill(s.pid);
process.exit(0);
