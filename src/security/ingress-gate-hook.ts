// Attaches the gate pipeline to the inference ingress: every request forwarded by the gateway
// (ModelInfer, ModelReady, ModelMetadata on gRPC, HTTP and WebSocket) passes the gates as an
// `infer` action on the inference segment; its tenant id goes into the frames, and its answer
// waits for its audit entry to be durable.
import type { IngressHook } from '../ingress/hooks.ts';
import type { RequestContext } from '../ingress/request-context.ts';
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';
import type { SecurityGates } from './gates.ts';

function auditUnavailable(): never {
  throw new InferenceError(InferenceErrorCode.AUDIT_UNAVAILABLE, 'the audit log cannot record this request; it was not answered');
}

export function securityIngressHook(gates: SecurityGates): IngressHook {
  return {
    name: 'security',
    async onRequest(ctx: RequestContext) {
      const d = await gates.check({
        requestId: ctx.requestId,
        action: 'infer',
        segment: 'inference',
        model: ctx.model,
        bytes: ctx.requestBytes,
        headers: ctx.headers,
        protocol: `${ctx.protocol}:${ctx.method}`,
      });
      ctx.tenant = d.tenant.id;
      if (d.durable !== undefined) ctx.commit = d.durable.catch(auditUnavailable);
    },
  };
}
