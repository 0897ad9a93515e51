// Exports BucketHistograms (plain numbers kept on the data path) as a Prometheus histogram.
// prom-client has no public way to publish pre-aggregated buckets, so this implements the
// small interface its Registry reads (name, help, type, aggregator, get()).
import type { Metric, Registry } from 'prom-client';
import type { BucketHistogram } from './bucket-histogram.ts';

export interface HistogramSeries<L extends string> {
  readonly labels: Readonly<Record<L, string>>;
  readonly histogram: BucketHistogram;
}

interface SampleValue {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

export class HistogramCollector<L extends string> {
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly L[],
    private readonly read: () => Iterable<HistogramSeries<L>>,
  ) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new Error(`invalid metric name ${name}`);
  }

  register(registry: Registry): this {
    // The registry only calls get()/reset() and reads name/help/type/aggregator.
    registry.registerMetric(this as unknown as Metric);
    return this;
  }

  async get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: SampleValue[] }> {
    const values: SampleValue[] = [];
    for (const s of this.read()) {
      const h = s.histogram;
      const cumulative = h.cumulative();
      for (let i = 0; i < h.bounds.length; i++) {
        values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: h.bounds[i]! }, value: cumulative[i]! });
      }
      values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: cumulative[h.bounds.length]! });
      values.push({ metricName: `${this.name}_sum`, labels: { ...s.labels }, value: h.sum });
      values.push({ metricName: `${this.name}_count`, labels: { ...s.labels }, value: h.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Values live in the BucketHistograms; there is nothing of ours to reset. */
  reset(): void {}
}
