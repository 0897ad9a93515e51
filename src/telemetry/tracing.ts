// OpenTelemetry traces of inference requests, exported as OTLP/HTTP (JSON) to
// `telemetry.otlp.endpoint` when set; off (no provider, no cost) otherwise.
// Spans: `ingress` (SERVER, the client request at the ingress), `link` (CLIENT, the segment round
// trip of the last attempt), `egress` (SERVER, the call at the egress, a child of the ingress
// span through the CALL envelope's W3C traceparent) and `upstream` (CLIENT, the model server
// call, whose traceparent goes on to the model server as gRPC metadata). Spans are started with
// the times the data path already took (performance.now()), so tracing adds no timer reads.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, defaultTextMapGetter, defaultTextMapSetter, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, RandomIdGenerator, TraceIdRatioBasedSampler, ParentBasedSampler, type IdGenerator } from '@opentelemetry/sdk-trace-base';

export interface TracingOptions {
  /** OTLP/HTTP traces URL, e.g. http://otel-collector:4318/v1/traces. */
  endpoint: string;
  /** service.name of the spans (default "sluice"). */
  serviceName: string;
  /** Node name from config: service.instance.id. */
  nodeName: string;
  /** Fraction of new traces sampled (a sampled parent is always followed). */
  sampleRatio: number;
  /** Extra HTTP headers for the collector (e.g. an authorization token). */
  headers?: Record<string, string>;
  /** Most spans buffered before the oldest are dropped; export every `exportIntervalMs`. */
  maxQueueSize?: number;
  exportIntervalMs?: number;
}

const propagator = new W3CTraceContextPropagator();

/**
 * Random ids, except for the one span whose ids the native engine already chose (its span id
 * went on the wire, to the egress or the model server): `Tracing.startWithIds` sets them for
 * the length of one startSpan call.
 */
class PresetIdGenerator implements IdGenerator {
  traceId: string | undefined;
  spanId: string | undefined;
  readonly #random = new RandomIdGenerator();
  generateTraceId = (): string => this.traceId ?? this.#random.generateTraceId();
  generateSpanId = (): string => this.spanId ?? this.#random.generateSpanId();
}

/** performance.now() milliseconds -> epoch milliseconds (what span start/end times take). */
export function epochMs(perfNow: number): number {
  return performance.timeOrigin + perfNow;
}

/** The context a W3C traceparent header names (ROOT_CONTEXT when absent or invalid). */
export function contextFromTraceparent(traceparent: string | undefined): Context {
  if (traceparent === undefined || traceparent === '') return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, { traceparent }, defaultTextMapGetter);
}

/** The W3C traceparent of a span (what a child in another process continues from). */
export function traceparentOf(span: Span): string | undefined {
  const carrier: Record<string, string> = {};
  propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, defaultTextMapSetter);
  return carrier.traceparent;
}

export class Tracing {
  readonly tracer: Tracer;
  /** Fraction of new traces sampled (the native engine samples its calls' new traces the same way). */
  readonly sampleRatio: number;
  private readonly provider: BasicTracerProvider;
  private readonly ids = new PresetIdGenerator();

  constructor(opts: TracingOptions) {
    this.sampleRatio = opts.sampleRatio;
    const exporter = new OTLPTraceExporter({ url: opts.endpoint, ...(opts.headers !== undefined ? { headers: opts.headers } : {}), timeoutMillis: 10_000 });
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': opts.serviceName, 'service.instance.id': opts.nodeName }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(opts.sampleRatio) }),
      idGenerator: this.ids,
      spanProcessors: [
        new BatchSpanProcessor(exporter, {
          maxQueueSize: opts.maxQueueSize ?? 8192,
          maxExportBatchSize: 512,
          scheduledDelayMillis: opts.exportIntervalMs ?? 1000,
        }),
      ],
    });
    this.tracer = this.provider.getTracer('sluice');
  }

  /** Starts a span at `startedAt` (performance.now() ms) under `parent`. */
  start(name: string, kind: SpanKind, startedAt: number, parent: Context, attributes?: Attributes): Span {
    return this.tracer.startSpan(name, { kind, startTime: epochMs(startedAt), ...(attributes !== undefined ? { attributes } : {}) }, parent);
  }

  /**
   * Starts a span with the ids the native engine chose (its context already travelled). `parent`
   * names the remote parent (ROOT_CONTEXT: a root, whose trace id is `traceId`); the sampler
   * decides as for any span (the engine sends only sampled calls, decided by the same rules).
   */
  startWithIds(name: string, kind: SpanKind, startedAt: number, parent: Context, traceId: string, spanId: string, attributes?: Attributes): Span {
    this.ids.traceId = traceId;
    this.ids.spanId = spanId;
    try {
      return this.start(name, kind, startedAt, parent, attributes);
    } finally {
      this.ids.traceId = undefined;
      this.ids.spanId = undefined;
    }
  }

  /** A finished child span covering [from, to] (performance.now() ms). */
  child(parent: Span, name: string, kind: SpanKind, from: number, to: number, attributes?: Attributes, error?: string): void {
    const s = this.start(name, kind, from, trace.setSpan(ROOT_CONTEXT, parent), attributes);
    if (error !== undefined) s.setStatus({ code: SpanStatusCode.ERROR, message: error });
    s.end(epochMs(to));
  }

  /** Exports what is buffered. */
  flush(): Promise<void> {
    return this.provider.forceFlush();
  }

  /** Exports what is buffered and stops. */
  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}

export { SpanKind, SpanStatusCode, trace, ROOT_CONTEXT };
export type { Span };
