// The process's V8 old-generation growing factor, set for the training plane's sake.
//
// Bulk passes through buffers that live for microseconds but are external memory to V8: node's
// HTTP/2 hands each socket read of a job's Push to JavaScript as a new ArrayBuffer. V8 counts
// external memory allocated since the last mark-compact against the old generation's slack, and
// the slack it leaves a heap that allocates little on-heap (the pools see to that) is small:
// about 23 MB over 24 MB live. Between two scavenges that much arrives, so the training isolate
// marked its whole heap about every 400 ms, some 15 times per GiB of bulk (bench/training-cpu.ts
// with SLUICE_TRAIN_CPU_TRACE_GC=1), 10-15% of the thread's CPU. With the factor at 3x the
// old generation's limit sits far enough above what the scavenges free that marking waits for
// real growth. V8 flags are process-wide (a worker refuses them), so the main isolate gets the
// same factor: fewer mark-compacts there too, for a larger heap between them.
import v8 from 'node:v8';

/** Sets `--heap-growing-percent` for every isolate of the process; 0 leaves V8's heuristics. Returns what was set. */
export function applyHeapGrowthPercent(percent: number): number | undefined {
  if (!Number.isInteger(percent) || percent < 0) throw new RangeError(`heap growth percent must be a non-negative integer, got ${percent}`);
  if (percent === 0) return undefined;
  // Read by V8 at each mark-compact when it computes the next limit; taking effect later is fine.
  v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
  return percent;
}
