// CPU accounting of another process from /proc, for the profiling and A/B benches.
import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time per thread (microseconds) from schedstat: the scheduler's exact run time, where
 * /proc's utime/stime are sampled at 100 Hz (a few percent of noise over a few seconds).
 * Keyed by thread name, the main thread as 'main' (V8's and libuv's helpers share names).
 */
export function threadCpuUs(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    let ns: number;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      continue; // the thread ended
    }
    const name = tid === String(pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    out.set(name, (out.get(name) ?? 0) + ns / 1000);
  }
  return out;
}

/** CPU time of every thread of a process, microseconds. */
export function cpuUs(pid: number): number {
  let us = 0;
  for (const v of threadCpuUs(pid).values()) us += v;
  return us;
}

/** Kernel-mode CPU (stime) in microseconds, and voluntary context switches (sleeps) of every thread. */
export function kernelUsAndSleeps(pid: number): { sys: number; sleeps: number } {
  const sys = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[12]) * 10_000;
  let sleeps = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
    if (m !== null) sleeps += Number(m[1]);
  }
  return { sys, sleeps };
}
