// Who a request speaks for, whichever credential proved it.
import type { Capability } from './capabilities.ts';
import { CAPABILITIES } from './capabilities.ts';

export interface Principal {
  kind: 'api-key' | 'jwt' | 'anonymous';
  /** Audit actor: `key:<id>`, `jwt:<sub or kid>`, or `anonymous`. */
  actor: string;
  /** Tenant name (null: the system tenant, only when authentication is off). */
  tenant: string | null;
  caps: readonly Capability[];
}

/** The principal of every request when no credential check is configured (the embedded demo). */
export const ANONYMOUS: Principal = Object.freeze({ kind: 'anonymous', actor: 'anonymous', tenant: null, caps: CAPABILITIES });
