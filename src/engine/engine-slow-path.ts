// Which calls the native engine sends to the TypeScript slow path, per tenant, from the policies
// that need per-request JavaScript (docs/dataplane.md "Slow path by policy"): tenants with a PII
// policy (the rewrite runs in the gateway's payload stage) and tenants in a threat monitor's
// stricter profile (the profile hook audits, throttles or blocks each of their calls, and the PII
// stage scans them in flag mode). Every other tenant stays on the native fast path. The engine
// decides after authenticating the call, when it knows the tenant (policy_table.cc); the relay
// to the TypeScript gRPC server is the one unknown JWTs and non-fast methods take.
import type { SluiceConfig } from '../config/schema.ts';
import { tenantsNeedingSlowPath } from '../security/pii/policy.ts';
import type { ThreatMonitor } from '../security/threats/threat-monitor.ts';

/** The tenant name the threat monitor gives calls without a tenant (threat-ingress.ts tenantNamesFrom). */
const ANONYMOUS = 'anonymous';

export interface SlowPathSet {
  /** Tenant names ("*": every tenant). */
  tenants: Set<string>;
  /** Calls without a tenant (authentication off) too. */
  noTenant: boolean;
}

export function slowPathSet(config: Pick<SluiceConfig, 'security'>, threats?: ThreatMonitor): SlowPathSet {
  const tenants = tenantsNeedingSlowPath(config);
  // A catch-all PII policy covers calls without a tenant (pii/policy.ts forTenantId(0)).
  let noTenant = tenants.has('*');
  for (const t of threats?.profiledTenants() ?? []) {
    tenants.add(t);
    if (t === ANONYMOUS) noTenant = true;
  }
  return { tenants, noTenant };
}
