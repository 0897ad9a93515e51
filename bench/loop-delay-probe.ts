// Event-loop delay of a sluice process over one benchmark phase, from two scrapes of its
// sluice_event_loop_delay_seconds histogram (the difference is the phase's own histogram).
import { BucketHistogram } from '../src/telemetry/bucket-histogram.ts';
import { EVENT_LOOP_DELAY_BUCKETS_SECONDS } from '../src/telemetry/event-loop-delay.ts';

const NAME = 'sluice_event_loop_delay_seconds';

export interface LoopDelay {
  /** Milliseconds, interpolated inside the bucket as histogram_quantile does. */
  p50: number;
  p99: number;
  /** Upper bound of the highest bucket any delay of the phase fell in (ms; Infinity above 1 s). */
  maxBucket: number;
  samples: number;
}

async function scrapeHistogram(metricsAddress: string): Promise<BucketHistogram> {
  const res = await fetch(`http://${metricsAddress}/metrics`);
  const text = await res.text();
  const h = new BucketHistogram(EVENT_LOOP_DELAY_BUCKETS_SECONDS);
  const cumulative = new Array<number>(h.counts.length).fill(0);
  for (const m of text.matchAll(new RegExp(`^${NAME}_bucket\\{le="([^"]+)"\\} (\\S+)$`, 'gm'))) {
    const i = m[1] === '+Inf' ? h.bounds.length : h.bounds.indexOf(Number(m[1]));
    if (i >= 0) cumulative[i] = Number(m[2]);
  }
  for (let i = 0; i < cumulative.length; i++) h.counts[i] = cumulative[i]! - (i === 0 ? 0 : cumulative[i - 1]!);
  h.count = cumulative.at(-1)!;
  h.sum = Number(new RegExp(`^${NAME}_sum (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return h;
}

/** Scrapes at start(); stop() scrapes again and summarizes the phase in between. */
export class LoopDelayProbe {
  #start: BucketHistogram | undefined;

  constructor(readonly metricsAddress: string) {}

  async start(): Promise<void> {
    this.#start = await scrapeHistogram(this.metricsAddress);
  }

  async stop(): Promise<LoopDelay> {
    const end = await scrapeHistogram(this.metricsAddress);
    const start = this.#start ?? new BucketHistogram(EVENT_LOOP_DELAY_BUCKETS_SECONDS);
    const phase = new BucketHistogram(EVENT_LOOP_DELAY_BUCKETS_SECONDS);
    let top = -1;
    for (let i = 0; i < phase.counts.length; i++) {
      phase.counts[i] = end.counts[i]! - start.counts[i]!;
      if (phase.counts[i]! > 0) top = i;
    }
    phase.count = end.count - start.count;
    phase.sum = end.sum - start.sum;
    return {
      p50: phase.quantile(0.5) * 1000,
      p99: phase.quantile(0.99) * 1000,
      maxBucket: top < 0 ? 0 : top === phase.bounds.length ? Infinity : phase.bounds[top]! * 1000,
      samples: phase.count,
    };
  }
}
