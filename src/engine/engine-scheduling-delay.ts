// The engine's links' scheduling delay (native/engine/scheduling_delay.h) as
// sluice_scheduling_delay_seconds{segment="inference"}: at each scrape, what the counters block
// gained since the last read is added into the histograms the TypeScript schedulers record into.
import type { BucketHistogram } from '../telemetry/bucket-histogram.ts';
import type { SegmentName, TrafficClass } from '../transport/types.ts';
import type { EngineCounters, EngineDelayClass } from './engine-counters.ts';

/** Where the delay goes: SluiceMetrics. */
export interface SchedulingDelaySink {
  schedulingDelay(segment: SegmentName, cls: TrafficClass): BucketHistogram;
  addDelaySource(pull: () => void): () => void;
}

const CLASSES: readonly EngineDelayClass[] = ['control', 'inference'];

/** Reads `counters` into `sink` at every scrape; the returned function removes it after a last read. */
export function addEngineSchedulingDelay(counters: EngineCounters, sink: SchedulingDelaySink): () => void {
  const seen = new Map<EngineDelayClass, { counts: number[]; sumNs: number }>();
  const pull = (): void => {
    for (const cls of CLASSES) {
      const now = counters.schedulingDelay(cls);
      const before = seen.get(cls);
      seen.set(cls, now);
      const delta = before === undefined ? now.counts : now.counts.map((n, i) => n - before.counts[i]!);
      if (delta.every((n) => n === 0)) continue;
      sink.schedulingDelay('inference', cls).addCounts(delta, (now.sumNs - (before?.sumNs ?? 0)) / 1e9);
    }
  };
  const remove = sink.addDelaySource(pull);
  return () => {
    remove();
    pull();
  };
}
