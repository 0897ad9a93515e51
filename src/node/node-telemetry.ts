// The ops side of a running node: request metrics from the ingress hooks, back-end links and
// schedulers into the metrics registry, and the readiness model fed by upstream probes, the
// segment listener and the peer links.
import { GrpcStatus } from '../kserve/status.ts';
import type { IngressHook } from '../ingress/hooks.ts';
import type { IngressProtocol } from '../ingress/request-context.ts';
import type { RequestProtocol, RequestStats } from '../telemetry/request-stats.ts';

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
