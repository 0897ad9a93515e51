// Batched engine events (EmitDeferred: one JS wake-up per batch, at most 10 ms late): how many
// windows of `windowMs` the answers of a run of calls span (a batch bound), and a counter of the
// batches JS sees (a run of events with no macrotask between them is one wake-up).

/** Windows of `windowMs` that the times in `answeredAt` (ascending, ms) span. */
export function batchWindows(answeredAt: readonly number[], windowMs = 8): number {
  let windows = 0;
  let windowStart = -Infinity;
  for (const t of answeredAt) {
    if (t - windowStart > windowMs) {
      windows += 1;
      windowStart = t;
    }
  }
  return windows;
}

/** Call `note()` once per event; `batches` counts the synchronous runs of events seen. */
export function batchCounter(): { note(): void; readonly batches: number } {
  let batches = 0;
  let inBatch = false;
  return {
    note() {
      if (inBatch) return;
      batches += 1;
      inBatch = true;
      setImmediate(() => (inBatch = false));
    },
    get batches() {
      return batches;
    },
  };
}
