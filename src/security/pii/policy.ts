// The PII policy table: which tenants' inference calls are scanned, how, and on which
// channels. It is also what the data plane reads to decide which tenants take the TypeScript
// slow path (docs/dataplane.md "Slow path by policy"): tenants absent from the table pay nothing.
import type { SecurityConfig, SluiceConfig } from '../../config/schema.ts';
import type { PiiClass } from './classes.ts';

export type PiiMode = 'strict' | 'reversible' | 'flag';
export type PiiChannel = 'request' | 'response';

export interface PiiPolicy {
  tenant: string;
  mode: PiiMode;
  classes: ReadonlySet<PiiClass>;
  channels: ReadonlySet<PiiChannel>;
  minConfidence: number;
}

/** The tenant name of requests with no tenant (security off) and the catch-all policy key. */
export const ANY_TENANT = '*';

export class PiiPolicyTable {
  private readonly byName = new Map<string, PiiPolicy>();
  private readonly nameById = new Map<number, string>();

  constructor(security: SecurityConfig) {
    // Names even without policies: the threat profile's flag mode (pii-stage.ts) needs them.
    for (const t of security.tenants) this.nameById.set(t.id, t.name);
    if (!security.pii.enabled) return;
    for (const p of security.pii.policies) {
      this.byName.set(p.tenant, { tenant: p.tenant, mode: p.mode, classes: new Set(p.classes), channels: new Set(p.channels), minConfidence: p.minConfidence });
    }
  }

  get empty(): boolean {
    return this.byName.size === 0;
  }

  /** The policy for a request of tenant id `tenantId` (0: no tenant), or undefined. */
  forTenantId(tenantId: number): PiiPolicy | undefined {
    if (this.byName.size === 0) return undefined;
    const name = this.nameById.get(tenantId);
    return (name === undefined ? undefined : this.byName.get(name)) ?? this.byName.get(ANY_TENANT);
  }

  tenantName(tenantId: number): string {
    return this.nameById.get(tenantId) ?? ANY_TENANT;
  }

  get policies(): readonly PiiPolicy[] {
    return [...this.byName.values()];
  }
}

/**
 * Tenants whose inference calls must take the TypeScript slow path because a PII policy
 * applies to them (for the C++ engine's policy table). Contains "*" when a catch-all policy
 * exists: then every call, including unauthenticated ones, takes the slow path.
 */
export function tenantsNeedingSlowPath(config: Pick<SluiceConfig, 'security'>): Set<string> {
  const pii = config.security.pii;
  if (!pii.enabled) return new Set();
  return new Set(pii.policies.map((p) => p.tenant));
}
