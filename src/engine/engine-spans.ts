// Spans of the calls the native engine served, from its batched SPAN records
// (native/engine/trace_context.h SpanRecord): the same spans, names and attributes the
// TypeScript path makes (src/node/node-telemetry.ts tracingHook and egressObserver), through the
// node's own Tracing (sampler, batch processor, OTLP exporter). The engine chose the ids that
// travelled (the ingress span's to the egress, the upstream span's to the model server); the
// `link` span's id is made here, as on the TypeScript path. No JavaScript runs per call while
// the records wait in the ring; a batch costs one wake-up.
import { CALL_METHOD_NAMES, type CallMethod } from '../wire/inference-envelope.ts';
import { grpcStatusName } from '../kserve/status.ts';
import { epochMs, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span, type Tracing } from '../telemetry/tracing.ts';

/** SpanRecord.kBytes */
export const SPAN_RECORD_BYTES = 104;
export const SpanSide = { INGRESS: 1, EGRESS: 2 } as const;

export interface EngineSpanRecord {
  side: number;
  hasParent: boolean;
  status: number;
  method: number;
  /** Ingress: the dialer id of the last attempt (0: never sent). */
  peer: number;
  attempts: number;
  tenant: number;
  traceId: string;
  spanId: string;
  parentId: string;
  /** Egress: the upstream span's id (it went to the model server). */
  childId: string;
  /** CLOCK_MONOTONIC milliseconds (fractional). */
  startMs: number;
  endMs: number;
  childStartMs: number;
  childEndMs: number;
  bytesIn: number;
  bytesOut: number;
  requestId: string;
  model: string;
  /** The error message of a failed ingress call ('' otherwise). */
  err: string;
}

function u64(b: Buffer, at: number): number {
  return b.readUInt32LE(at) + b.readUInt32LE(at + 4) * 0x1_0000_0000;
}

/** Decodes one SPAN record body; throws RangeError on a body of the wrong size. */
export function decodeSpanRecord(body: Buffer, requestId: string, model: string, err: string): EngineSpanRecord {
  if (body.length !== SPAN_RECORD_BYTES) throw new RangeError(`span record of ${body.length} bytes (want ${SPAN_RECORD_BYTES})`);
  return {
    side: body[0]!,
    hasParent: body[1] === 1,
    status: body[2]!,
    method: body[3]!,
    peer: body.readUInt32LE(4),
    attempts: body.readUInt32LE(8),
    tenant: body.readUInt32LE(12),
    traceId: body.toString('hex', 16, 32),
    spanId: body.toString('hex', 32, 40),
    parentId: body.toString('hex', 40, 48),
    childId: body.toString('hex', 48, 56),
    startMs: u64(body, 56) / 1e6,
    endMs: u64(body, 64) / 1e6,
    childStartMs: u64(body, 72) / 1e6,
    childEndMs: u64(body, 80) / 1e6,
    bytesIn: u64(body, 88),
    bytesOut: u64(body, 96),
    requestId,
    model,
    err,
  };
}

/**
 * CLOCK_MONOTONIC milliseconds -> performance.now() milliseconds. Both count from the same
 * clock (libuv's hrtime is CLOCK_MONOTONIC); the offset is read once.
 */
export function monotonicToPerf(): (monoMs: number) => number {
  const offset = performance.now() - Number(process.hrtime.bigint()) / 1e6;
  return (monoMs) => monoMs + offset;
}

export interface EngineSpanNames {
  /** Dialer id -> peer name (ingress). */
  peer(dialer: number): string;
}

/** Turns the engine's span records into the TypeScript path's spans. */
export class EngineSpans {
  readonly #tracing: Tracing;
  readonly #names: EngineSpanNames;
  readonly #perf = monotonicToPerf();

  constructor(tracing: Tracing, names: EngineSpanNames) {
    this.#tracing = tracing;
    this.#names = names;
  }

  record(r: EngineSpanRecord): void {
    if (r.side === SpanSide.INGRESS) this.#ingress(r);
    else if (r.side === SpanSide.EGRESS) this.#egress(r);
  }

  #parent(r: EngineSpanRecord) {
    // The engine sends only sampled calls: a remote parent is a sampled one.
    return r.hasParent ? trace.setSpanContext(ROOT_CONTEXT, { traceId: r.traceId, spanId: r.parentId, traceFlags: 1, isRemote: true }) : ROOT_CONTEXT;
  }

  // tracingHook: `ingress` (SERVER) and its `link` (CLIENT) child for the last attempt's round trip.
  #ingress(r: EngineSpanRecord): void {
    const span = this.#tracing.startWithIds('ingress', SpanKind.SERVER, this.#perf(r.startMs), this.#parent(r), r.traceId, r.spanId, {
      'sluice.request_id': r.requestId,
      'sluice.protocol': 'grpc',
      'sluice.method': r.method === 2 ? 'ModelStreamInfer' : 'ModelInfer',
      'sluice.model': r.model,
      'sluice.tenant': r.tenant,
      'sluice.bytes_in': r.bytesIn,
    });
    if (!span.isRecording()) return;
    const failed = r.status !== 0;
    if (r.childStartMs > 0) {
      this.#tracing.child(span, 'link', SpanKind.CLIENT, this.#perf(r.childStartMs), this.#perf(r.childEndMs), { 'sluice.peer': this.#names.peer(r.peer), 'sluice.attempts': r.attempts }, failed ? r.err : undefined);
    }
    span.setAttributes({ 'sluice.status': r.status, 'sluice.code': grpcStatusName(r.status), 'sluice.bytes_out': r.bytesOut });
    if (failed) span.setStatus({ code: SpanStatusCode.ERROR, message: r.err });
    span.end(epochMs(this.#perf(r.endMs)));
  }

  // egressObserver: `egress` (SERVER) under the CALL's context, `upstream` (CLIENT) its child.
  #egress(r: EngineSpanRecord): void {
    const attrs = {
      'sluice.request_id': r.requestId,
      'sluice.model': r.model,
      'sluice.method': CALL_METHOD_NAMES[r.method as CallMethod] ?? String(r.method),
      'sluice.tenant': r.tenant,
      'sluice.bytes_in': r.bytesIn,
    };
    const egress = this.#tracing.startWithIds('egress', SpanKind.SERVER, this.#perf(r.startMs), this.#parent(r), r.traceId, r.spanId, attrs);
    if (!egress.isRecording()) return;
    const upstream = this.#tracing.startWithIds('upstream', SpanKind.CLIENT, this.#perf(r.childStartMs), trace.setSpan(ROOT_CONTEXT, egress), r.traceId, r.childId, attrs);
    const name = grpcStatusName(r.status);
    const end = epochMs(this.#perf(r.endMs));
    for (const s of [upstream, egress] as Span[]) {
      s.setAttributes({ 'sluice.status': r.status, 'sluice.code': name, 'sluice.bytes_out': r.bytesOut });
      if (r.status !== 0) s.setStatus({ code: SpanStatusCode.ERROR, message: name });
      s.end(end);
    }
  }
}
