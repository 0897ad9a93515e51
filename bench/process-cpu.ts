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

/** One thread name's counters, summed over the threads of that name (V8 and libuv pools share names). */
export interface ThreadCounters {
  /** Threads of this name. */
  threads: number;
  /** utime + stime from /proc/<pid>/task/<tid>/stat (sampled at the clock tick: coarse). */
  statUs: number;
  /** Run time from schedstat (exact). */
  schedUs: number;
  /** Time spent runnable but waiting for a CPU (schedstat's run delay): the scheduler's share of latency. */
  waitUs: number;
  voluntary: number;
  nonvoluntary: number;
}

// /proc's utime/stime unit (USER_HZ): 100 on every Linux architecture node runs on.
const USER_HZ = 100;

/** Every thread of `pid` by name (the main thread as 'main'): CPU time and context switches. */
export function threadCounters(pid: number): Map<string, ThreadCounters> {
  const out = new Map<string, ThreadCounters>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    let sched: string;
    let status: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      sched = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8');
      status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    } catch {
      continue; // the thread ended
    }
    const close = stat.lastIndexOf(')');
    const name = tid === String(pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' '); // fields[0] is the state (field 3)
    const t = out.get(name) ?? { threads: 0, statUs: 0, schedUs: 0, waitUs: 0, voluntary: 0, nonvoluntary: 0 };
    t.threads += 1;
    t.statUs += ((Number(fields[11]) + Number(fields[12])) * 1e6) / USER_HZ;
    const [runNs, waitNs] = sched.split(' ');
    t.schedUs += Number(runNs) / 1000;
    t.waitUs += Number(waitNs) / 1000;
    t.voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    t.nonvoluntary += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    out.set(name, t);
  }
  return out;
}
