// Tenant policy at the egress end of the inference segment. The ingress bound the tenant id
// into every frame (AAD and per-tenant key); the egress checks it again against its own tenant
// table, so a misconfigured or compromised ingress still cannot reach a model for a tenant that
// may not use it. With no tenants configured (the embedded demo) every call passes.
import type { SecurityConfig } from '../config/schema.ts';
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';
import type { SecurityEventSink } from './events.ts';

export type EgressCallPolicy = (tenantId: number, model: string, requestId: string) => InferenceError | null;

export function egressTenantPolicy(config: SecurityConfig, events: SecurityEventSink): EgressCallPolicy | null {
  if (config.tenants.length === 0) return null;
  const byId = new Map(config.tenants.map((t) => [t.id, { name: t.name, models: t.models.includes('*') ? null : new Set(t.models) }]));
  return (tenantId, model, requestId) => {
    const t = byId.get(tenantId);
    let why: string | null = null;
    if (t === undefined) why = tenantId === 0 ? 'calls without a tenant are not served here' : `tenant id ${tenantId} is not configured here`;
    else if (t.models !== null && !t.models.has(model)) why = `tenant "${t.name}" may not use model "${model.slice(0, 128)}"`;
    if (why === null) return null;
    events.emit({
      type: 'policy.denied',
      tenant: t?.name ?? null,
      requestId,
      actor: `tenant-id:${tenantId}`,
      outcome: 'denied',
      reason: why,
      detail: { gate: 'egress', code: InferenceErrorCode.TENANT_DENIED, model, tenant_id: tenantId },
    });
    return new InferenceError(InferenceErrorCode.TENANT_DENIED, why);
  };
}
