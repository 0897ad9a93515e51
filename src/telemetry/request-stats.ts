// Per-request counters and latency histograms, updated by the ingress as requests finish and
// read by the metrics registry at scrape time. One record() is a map lookup and a few adds.
import type { TrafficClass } from '../transport/types.ts';
import { BucketHistogram, LATENCY_BUCKETS_SECONDS } from './bucket-histogram.ts';

export type RequestProtocol = 'http' | 'grpc' | 'websocket';

export interface RequestSeries {
  readonly protocol: RequestProtocol;
  readonly cls: TrafficClass;
  readonly model: string;
  /** HTTP status for http/websocket, gRPC status name (OK, UNAVAILABLE, ...) for grpc. */
  readonly code: string;
  readonly latency: BucketHistogram;
}

/** Model label used once the distinct-model limit is reached (client-chosen names must not explode cardinality). */
export const OTHER_MODEL = '_other';

export class RequestStats {
  private readonly series = new Map<string, RequestSeries>();
  private readonly models = new Set<string>();
  private readonly maxModels: number;
  readonly #sources = new Set<() => void>();

  constructor(opts: { maxModels?: number } = {}) {
    this.maxModels = opts.maxModels ?? 256;
  }

  /** Records a finished request; `seconds` is the time from arrival to the answer. */
  record(protocol: RequestProtocol, cls: TrafficClass, model: string, code: string | number, seconds: number): void {
    this.#series(protocol, cls, model, code).latency.observe(seconds);
  }

  /** Records requests counted per latency bucket elsewhere (LATENCY_BUCKETS_SECONDS, +Inf last). */
  recordCounts(protocol: RequestProtocol, cls: TrafficClass, model: string, code: string | number, counts: ArrayLike<number>, sumSeconds: number): void {
    this.#series(protocol, cls, model, code).latency.addCounts(counts, sumSeconds);
  }

  /**
   * Adds a source that records what it counted since its last call (e.g. the native engine's
   * request tally) whenever the series are read. Returns its removal.
   */
  addSource(pull: () => void): () => void {
    this.#sources.add(pull);
    return () => this.#sources.delete(pull);
  }

  #series(protocol: RequestProtocol, cls: TrafficClass, model: string, code: string | number): RequestSeries {
    const codeStr = typeof code === 'number' ? String(code) : code;
    let label = model;
    if (!this.models.has(model)) {
      if (this.models.size >= this.maxModels) label = OTHER_MODEL;
      else this.models.add(model);
    }
    const key = `${protocol}\u0000${cls}\u0000${label}\u0000${codeStr}`;
    let s = this.series.get(key);
    if (s === undefined) {
      s = { protocol, cls, model: label, code: codeStr, latency: new BucketHistogram(LATENCY_BUCKETS_SECONDS) };
      this.series.set(key, s);
    }
    return s;
  }

  /** Every series seen so far (counts never go down). */
  all(): IterableIterator<RequestSeries> {
    for (const pull of this.#sources) pull();
    return this.series.values();
  }
}
