// The ops side of a running node: request metrics from the ingress hooks, back-end links and
// schedulers into the metrics registry, the readiness model fed by upstream probes, the segment
// listener and the peer links; the access log and traces of requests at the ingress (hooks) and
// the egress (its upstream-call observer).
import { GrpcStatus, grpcStatusName } from '../kserve/status.ts';
import type { EgressCallObserver } from '../egress/egress-service.ts';
import type { IngressHook } from '../ingress/hooks.ts';
import { answeredStatus, type IngressProtocol, type RequestContext } from '../ingress/request-context.ts';
import { AccessLog, roundMs } from '../telemetry/access-log.ts';
import { egressAccessRecord } from '../telemetry/egress-access-record.ts';
import type { RequestProtocol, RequestStats } from '../telemetry/request-stats.ts';
import { contextFromTraceparent, SpanKind, SpanStatusCode, traceparentOf, epochMs, type Span, type Tracing } from '../telemetry/tracing.ts';

const PROTOCOL: Readonly<Record<IngressProtocol, RequestProtocol>> = { grpc: 'grpc', http: 'http', ws: 'websocket' };

const GRPC_STATUS_NAME: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(GrpcStatus).map(([name, code]) => [code, name]));

/** Records every answered ingress request: protocol, class, model, code and latency. */
export function requestMetricsHook(stats: RequestStats): IngressHook {
  return {
    name: 'metrics',
    onResponse(ctx, outcome) {
      const code =
        ctx.protocol === 'grpc' ? (GRPC_STATUS_NAME[outcome.status] ?? String(outcome.status)) : String(outcome.error === undefined ? 200 : outcome.error.httpStatus);
      stats.record(PROTOCOL[ctx.protocol], 'inference', ctx.model, code, outcome.durationMs / 1000);
    },
  };
}

const spans = new WeakMap<RequestContext, Span>();

/**
 * The ingress span of every request (continuing the client's traceparent when it sent one), its
 * `link` child for the segment round trip, and the traceparent the CALL carries to the egress.
 */
export function tracingHook(tracing: Tracing): IngressHook {
  return {
    name: 'tracing',
    onRequest(ctx) {
      const span = tracing.start('ingress', SpanKind.SERVER, ctx.startedAt, contextFromTraceparent(ctx.headers.traceparent), {
        'sluice.request_id': ctx.requestId,
        'sluice.protocol': PROTOCOL[ctx.protocol],
        'sluice.method': ctx.method,
        'sluice.model': ctx.model,
        'sluice.tenant': ctx.tenant,
        'sluice.bytes_in': ctx.requestBytes,
      });
      spans.set(ctx, span);
      if (span.isRecording()) ctx.traceparent = traceparentOf(span);
      else if (ctx.headers.traceparent !== undefined) ctx.traceparent = ctx.headers.traceparent;
    },
    onResponse(ctx, outcome) {
      const span = spans.get(ctx);
      if (span === undefined) return; // Refused before the hooks ran.
      spans.delete(ctx);
      const { status, code } = answeredStatus(ctx.protocol, outcome.error);
      const trip = ctx.segment;
      const now = performance.now();
      if (trip !== undefined) {
        tracing.child(span, 'link', SpanKind.CLIENT, trip.sentAt, trip.repliedAt > 0 ? trip.repliedAt : now, { 'sluice.peer': trip.peer, 'sluice.attempts': trip.attempts }, outcome.error?.message);
      }
      span.setAttributes({ 'sluice.status': status, 'sluice.code': code, 'sluice.bytes_out': outcome.responseBytes });
      if (outcome.error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error.message });
      span.end(epochMs(ctx.startedAt + outcome.durationMs));
    },
  };
}

/** One access-log line per answered ingress request (telemetry.accessLog). */
export function accessLogHook(log: AccessLog): IngressHook {
  return {
    name: 'access-log',
    onResponse(ctx, outcome) {
      const { status, code } = answeredStatus(ctx.protocol, outcome.error);
      const trip = ctx.segment;
      const end = ctx.startedAt + outcome.durationMs;
      const sentFirst = trip?.firstSentAt ?? end;
      const upstreamMs = trip === undefined ? 0 : (trip.repliedAt > 0 ? trip.repliedAt : end) - trip.sentAt;
      log.write({
        request_id: ctx.requestId,
        tenant: ctx.tenant,
        model: ctx.model,
        protocol: PROTOCOL[ctx.protocol],
        method: ctx.method,
        status,
        code,
        bytes_in: ctx.requestBytes,
        bytes_out: outcome.responseBytes,
        total_ms: roundMs(outcome.durationMs),
        queue_ms: roundMs(sentFirst - ctx.startedAt),
        upstream_ms: roundMs(upstreamMs),
        ...(trip !== undefined ? { peer: trip.peer, attempts: trip.attempts } : {}),
        ...(ctx.traceparent !== undefined ? { trace_id: ctx.traceparent.slice(3, 35) } : {}),
      });
    },
  };
}

/**
 * The egress' telemetry per model-server call: the upstream latency histogram, an access-log
 * line (protocol "segment"), and the `egress` and `upstream` spans, whose traceparent goes on
 * to the model server.
 */
export function egressObserver(parts: { upstreamCalls: RequestStats; accessLog?: AccessLog; tracing?: Tracing }): EgressCallObserver {
  return {
    begin(call) {
      let egressSpan: Span | undefined;
      let upstreamSpan: Span | undefined;
      let traceparent = call.traceparent;
      const tracing = parts.tracing;
      if (tracing !== undefined) {
        const attrs = { 'sluice.request_id': call.requestId, 'sluice.model': call.model, 'sluice.method': call.method, 'sluice.tenant': call.tenant, 'sluice.bytes_in': call.bytesIn };
        egressSpan = tracing.start('egress', SpanKind.SERVER, call.receivedAt, contextFromTraceparent(call.traceparent), attrs);
        upstreamSpan = tracing.start('upstream', SpanKind.CLIENT, call.calledAt, contextFromTraceparent(traceparentOf(egressSpan)), attrs);
        if (upstreamSpan.isRecording()) traceparent = traceparentOf(upstreamSpan);
      }
      return {
        ...(traceparent !== undefined ? { traceparent } : {}),
        end(status, bytesOut, upstream) {
          const doneAt = performance.now();
          const name = grpcStatusName(status);
          parts.upstreamCalls.record('grpc', 'inference', call.model, name, (doneAt - call.calledAt) / 1000);
          for (const s of [upstreamSpan, egressSpan]) {
            if (s === undefined) continue;
            s.setAttributes({ 'sluice.status': status, 'sluice.code': name, 'sluice.bytes_out': bytesOut });
            if (status !== 0) s.setStatus({ code: SpanStatusCode.ERROR, message: name });
            s.end(epochMs(doneAt));
          }
          parts.accessLog?.write(
            egressAccessRecord({
              requestId: call.requestId,
              tenant: call.tenant,
              model: call.model,
              method: call.method,
              status,
              bytesIn: call.bytesIn,
              bytesOut,
              totalMs: doneAt - call.receivedAt,
              queueMs: call.calledAt - call.receivedAt,
              upstreamMs: doneAt - call.calledAt,
              ...(call.peer !== undefined ? { peer: call.peer } : {}),
              ...(upstream !== undefined ? { upstream } : {}),
              ...(traceparent !== undefined ? { traceId: traceparent.slice(3, 35) } : {}),
            }),
          );
        },
      };
    },
  };
}
