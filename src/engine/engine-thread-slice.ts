// The engine thread's place in the CPU scheduler. On 2 cores the engine thread shares the CPUs
// with the JS main thread, V8's helpers, the model server and the client; when a call's bytes
// arrive while another thread runs, the engine thread waits until that thread's slice ends (the
// kernel's default EEVDF slice is 0.7 ms x (1 + log2 CPUs); a slice overrun is noticed at the
// next tick, 4 ms at HZ=250). A shorter slice of its own (Linux 6.12+, sched_attr.sched_runtime,
// no privileges needed) gives the woken engine thread the earlier deadline, so it preempts at
// once: per wake-up the engine runs tens of microseconds, well inside the slice, and its share of
// the CPU is unchanged (that is the nice value's, which is left alone). What is possible without
// privileges: a shorter (or longer) slice, a higher nice value or SCHED_BATCH/SCHED_IDLE (all
// lower priority); a lower nice value or SCHED_FIFO/SCHED_RR need CAP_SYS_NICE (or RLIMIT_NICE /
// RLIMIT_RTPRIO), which sluice does not ask for.
import type { EngineLoopThread, NativeEngineHandle } from './engine-addon.ts';

/** The slice the engine thread asks for by default: well under the kernel default (1.4 ms on 2 cores) so a woken engine thread preempts, and above the tens of microseconds one wake-up of the engine runs, so it is rarely preempted mid-work (the kernel allows 100 us..100 ms). */
export const DEFAULT_ENGINE_SLICE_US = 250;

export interface EngineThreadSchedule extends EngineLoopThread {
  /** What was asked for (undefined: the kernel's default was kept). */
  requestedSliceUs?: number;
  /** Why the request was refused (the thread runs with the kernel's default). */
  error?: string;
}

/**
 * The slice to ask for: SLUICE_ENGINE_SLICE_US (0 keeps the kernel's default: A/B measurements),
 * else DEFAULT_ENGINE_SLICE_US. A value that is not a number of 100..100000 us is an error.
 */
export function engineSliceUs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.SLUICE_ENGINE_SLICE_US;
  if (raw === undefined || raw === '') return DEFAULT_ENGINE_SLICE_US;
  const us = Number(raw);
  if (!Number.isInteger(us) || (us !== 0 && (us < 100 || us > 100_000))) {
    throw new RangeError(`SLUICE_ENGINE_SLICE_US must be 0 (kernel default) or 100..100000 (microseconds), got ${JSON.stringify(raw)}`);
  }
  return us;
}

/** Asks for `sliceUs` on the engine's loop thread (0: nothing asked); never throws for a refusal. */
export function applyEngineSlice(handle: Pick<NativeEngineHandle, 'setThreadSlice' | 'threadSchedule'>, sliceUs: number): EngineThreadSchedule {
  if (sliceUs === 0) return handle.threadSchedule();
  try {
    return { ...handle.setThreadSlice(sliceUs), requestedSliceUs: sliceUs };
  } catch (e) {
    // A kernel or seccomp profile that refuses sched_setattr: the default slice still works.
    return { ...handle.threadSchedule(), requestedSliceUs: sliceUs, error: (e as Error).message };
  }
}
