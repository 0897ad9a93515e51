// Bulk chunk size: an inference frame that arrives while a bulk chunk is being written waits
// for at most that one chunk, so a chunk must take no longer than a slice of the latency target
// to write at the link's bandwidth. Bounded below (per-chunk overhead) and above (memory,
// AEAD buffer size), and rounded down to a 4 KiB multiple (page-friendly buffers).
export interface ChunkSizeOptions {
  /** Inference latency target, milliseconds. */
  latencyTargetMs: number;
  /** Fraction of the target one chunk may take on the wire (default 0.1). */
  budgetFraction?: number;
  minBytes: number;
  maxBytes: number;
}

const ALIGN = 4096;

export function chunkSizeFor(bandwidthBytesPerSec: number, opts: ChunkSizeOptions): number {
  const { latencyTargetMs, minBytes, maxBytes } = opts;
  const fraction = opts.budgetFraction ?? 0.1;
  if (!(minBytes >= 1 && maxBytes >= minBytes)) throw new RangeError(`need 1 <= minBytes <= maxBytes, got ${minBytes}..${maxBytes}`);
  if (!(latencyTargetMs > 0)) throw new RangeError(`latencyTargetMs must be > 0, got ${latencyTargetMs}`);
  if (!(fraction > 0 && fraction <= 1)) throw new RangeError(`budgetFraction must be in (0, 1], got ${fraction}`);
  // Unknown bandwidth (no measurement yet): start small; the estimate fills in within a few chunks.
  if (!(bandwidthBytesPerSec > 0)) return minBytes;
  const raw = (bandwidthBytesPerSec * latencyTargetMs * fraction) / 1000;
  const aligned = raw >= ALIGN ? Math.floor(raw / ALIGN) * ALIGN : Math.floor(raw);
  return Math.max(minBytes, Math.min(maxBytes, aligned));
}
