// System calls of another process while a piece of work runs (strace -c -f attached to it), for
// the per-call profiles of the sluice pair (pair-cpu.ts, pair-wakeups.ts). strace slows the
// traced process: the work's timings and wake-ups are not representative, only the counts.
import { spawn } from 'node:child_process';

/** strace -c -f on `pid` while `work` runs (it returns its number of calls); the syscall table (calls per syscall). */
export async function straceCounts(pid: number, work: () => Promise<number>): Promise<{ calls: number; counts: Record<string, number> }> {
  const st = spawn('strace', ['-c', '-f', '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let text = '';
  st.stderr.on('data', (d: Buffer) => (text += d.toString()));
  await new Promise((r) => setTimeout(r, 500)); // attached
  const calls = await work();
  const done = new Promise((r) => st.once('close', r));
  st.kill('SIGINT');
  await done;
  const counts: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line);
    if (m !== null && m[2] !== 'total') counts[m[2]!] = Number(m[1]);
  }
  return { calls, counts };
}
