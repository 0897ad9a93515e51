// API keys: `slk_<id>_<secret>`. The id (12 hex) is public and names the record; the secret is
// 32 random bytes. Only SHA-256 of the whole key is stored, bound to a tenant and capabilities.
// Presented keys are checked with a constant-time comparison of the digests.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { SluiceError } from '../errors.ts';
import { isSubset, type Capability } from './capabilities.ts';

const KEY_RE = /^slk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

export interface ApiKeyRecord {
  id: string;
  tenant: string;
  caps: Capability[];
  /** SHA-256 of the full key, hex. */
  hash: string;
  created_at: string;
  label?: string;
  /** Set when rotated from another key (its id). */
  rotated_from?: string;
  /** The key stops working at this time (revocation, or the end of a rotation's grace period). */
  expires_at?: string;
  revoked_reason?: string;
}

/** Who a valid key speaks for. */
export interface ApiKeyPrincipal {
  kind: 'api-key';
  keyId: string;
  tenant: string;
  caps: readonly Capability[];
}

export type ApiKeyCheck =
  | { ok: true; principal: ApiKeyPrincipal }
  | { ok: false; reason: 'malformed' | 'unknown' | 'mismatch' | 'expired'; keyId: string | null };

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function looksLikeApiKey(s: string): boolean {
  return s.startsWith('slk_');
}

/** Creates a key and its record. The key is returned once and never stored. */
export function generateApiKey(tenant: string, caps: readonly Capability[], now = new Date(), extra: Partial<ApiKeyRecord> = {}): { key: string; record: ApiKeyRecord } {
  const id = randomBytes(6).toString('hex');
  const key = `slk_${id}_${randomBytes(32).toString('base64url')}`;
  const record: ApiKeyRecord = { ...extra, id, tenant, caps: [...caps], hash: hashApiKey(key), created_at: now.toISOString() };
  return { key, record };
}

/** Refuses to let a principal mint or rotate into a scope wider than its own. */
export function assertWithinScope(issuer: { tenant: string; caps: readonly Capability[] }, tenant: string, caps: readonly Capability[]): void {
  if (tenant !== issuer.tenant) {
    throw new SluiceError('SLUICE_ERR_SCOPE_WIDENING', `a key of tenant "${issuer.tenant}" cannot act for tenant "${tenant}"`);
  }
  if (!isSubset(caps, issuer.caps)) {
    throw new SluiceError('SLUICE_ERR_SCOPE_WIDENING', `capabilities [${caps.join(',')}] exceed the key's own [${issuer.caps.join(',')}]`);
  }
}

/** An immutable lookup table of key records by id. */
export class ApiKeySet {
  private readonly byId: Map<string, { record: ApiKeyRecord; digest: Buffer; expiresMs: number; principal: ApiKeyPrincipal }>;
  // Compared against when the id is unknown, so that path does the same work as a mismatch.
  private static readonly dummy = Buffer.alloc(32);

  constructor(records: readonly ApiKeyRecord[]) {
    this.byId = new Map(
      records.map((r) => [
        r.id,
        {
          record: r,
          digest: Buffer.from(r.hash, 'hex'),
          expiresMs: r.expires_at === undefined ? Number.POSITIVE_INFINITY : Date.parse(r.expires_at),
          principal: Object.freeze({ kind: 'api-key' as const, keyId: r.id, tenant: r.tenant, caps: Object.freeze([...r.caps]) }),
        },
      ]),
    );
  }

  get size(): number {
    return this.byId.size;
  }

  records(): ApiKeyRecord[] {
    return [...this.byId.values()].map((v) => v.record);
  }

  check(presented: string, nowMs = Date.now()): ApiKeyCheck {
    const m = KEY_RE.exec(presented);
    if (m === null) return { ok: false, reason: 'malformed', keyId: null };
    const id = m[1] as string;
    const digest = createHash('sha256').update(presented).digest();
    const entry = this.byId.get(id);
    const equal = timingSafeEqual(digest, entry?.digest ?? ApiKeySet.dummy);
    if (entry === undefined) return { ok: false, reason: 'unknown', keyId: id };
    if (!equal) return { ok: false, reason: 'mismatch', keyId: id };
    if (nowMs >= entry.expiresMs) return { ok: false, reason: 'expired', keyId: id };
    return { ok: true, principal: entry.principal };
  }
}
