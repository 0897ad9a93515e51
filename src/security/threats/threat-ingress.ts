// The threat monitor's two seams on the inference ingress:
//  - a hook that applies a flagged tenant's stricter profile to each of its requests: every
//    request audited (`threat.profile_request`), and by the tenant's action `throttle` (a token
//    bucket at profile.rateLimitPerSecond: RATE_LIMITED past it) or `block` (PERMISSION_DENIED);
//  - the tensor tap the gateway calls for each ModelInfer: sampled, copies the numeric inputs
//    and queues them for the detectors; it never throws into the call and never waits.
import type { IngressHook } from '../../ingress/hooks.ts';
import type { RequestContext } from '../../ingress/request-context.ts';
import { InferenceError, InferenceErrorCode } from '../../kserve/inference-error.ts';
import type { SecurityEventSink } from '../events.ts';
import { tapInputs } from './inference-tap.ts';
import type { ThreatMonitor } from './threat-monitor.ts';

/** Tenant id -> name (the security config's tenants); 0 and unknown ids are `anonymous`. */
export type TenantNames = (id: number) => string;

export function tenantNamesFrom(tenants: readonly { id: number; name: string }[]): TenantNames {
  const byId = new Map(tenants.map((t) => [t.id, t.name]));
  return (id) => byId.get(id) ?? 'anonymous';
}

export function threatProfileHook(monitor: ThreatMonitor, names: TenantNames, events: SecurityEventSink, rateLimitPerSecond: number): IngressHook {
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    name: 'threat-profile',
    onRequest(ctx: RequestContext) {
      const tenant = names(ctx.tenant);
      const profile = monitor.profileOf(tenant);
      if (profile === undefined) return;
      events.emit({ type: 'threat.profile_request', tenant, requestId: ctx.requestId, actor: 'threat-monitor', outcome: profile.action === 'block' ? 'denied' : 'success', detail: { model: ctx.model, action: profile.action, signal: profile.signal } });
      if (profile.action === 'block') {
        throw new InferenceError(InferenceErrorCode.PERMISSION_DENIED, `tenant ${tenant} is blocked until ${new Date(profile.until).toISOString()} after a suspected ${profile.signal} attack`);
      }
      if (profile.action === 'throttle') {
        const now = performance.now();
        const b = buckets.get(tenant) ?? { tokens: rateLimitPerSecond, at: now };
        b.tokens = Math.min(rateLimitPerSecond, b.tokens + ((now - b.at) / 1000) * rateLimitPerSecond);
        b.at = now;
        if (buckets.size > 10_000) buckets.clear();
        buckets.set(tenant, b);
        if (b.tokens < 1) throw new InferenceError(InferenceErrorCode.RATE_LIMITED, `tenant ${tenant} is throttled to ${rateLimitPerSecond} requests per second after a suspected ${profile.signal} attack`);
        b.tokens -= 1;
      }
    },
  };
}

/** The gateway's tap for ModelInfer payloads (already validated by the ingress). */
export function threatTap(monitor: ThreatMonitor, names: TenantNames): (ctx: RequestContext, payload: Buffer) => void {
  return (ctx, payload) => {
    if (!monitor.shouldSample()) return;
    try {
      const inputs = tapInputs(payload);
      if (inputs.length > 0) monitor.tap({ tenant: names(ctx.tenant), model: ctx.model, requestId: ctx.requestId, inputs });
    } catch {
      // A payload the tap cannot read is the ingress's business (it validated it): never fail a call here.
    }
  };
}
