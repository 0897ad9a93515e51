// Compiles the ingress's security state into the engine's policy table (the blob
// native/engine/policy_table.h parses): tenants with their models and limits, routes (model ->
// peer indices), API-key records (SHA-256 digests, never keys), and verified JWTs the engine
// may accept without asking again. TypeScript recompiles and the engine swaps the table
// atomically whenever the config, the key store or the routes change.
import type { SecurityConfig } from '../config/schema.ts';
import type { ApiKeyRecord } from '../security/api-keys.ts';
import type { Capability } from '../security/capabilities.ts';
import { NO_BUCKET } from '../security/shared-rate-buckets.ts';

export const POLICY_MAGIC = 0x54504c53; // "SLPT"
export const POLICY_VERSION = 2;
export const NO_TENANT = 0xffffffff;

export const PolicyFlag = {
  AUTH_REQUIRED: 1,
  API_KEYS: 2,
  JWT: 4,
  /** Allowed requests are audited durably before their answer: such calls take the TypeScript path. */
  AUDIT_ALLOWED: 8,
  /** Refusals are audited durably before their answer: the engine hands them to TypeScript. */
  AUDIT_REFUSALS: 16,
  /** Calls without a tenant (authentication off) take the TypeScript slow path. */
  NO_TENANT_SLOW: 32,
} as const;

const CAP_BITS: Record<Capability, number> = { infer: 1, train: 2, admin: 4 };

export function capBits(caps: readonly Capability[]): number {
  let bits = 0;
  for (const c of caps) bits |= CAP_BITS[c];
  return bits;
}

export interface VerifiedToken {
  /** SHA-256 of the bearer token. */
  digest: Uint8Array;
  tenant: string;
  caps: readonly Capability[];
  /** Expiry (ms since the epoch): the engine asks again after it. */
  expMs: number;
  /** Audit actor (`jwt:<sub>`). */
  actor: string;
}

export interface PolicyInputs {
  generation: number;
  security: SecurityConfig;
  apiKeys: readonly ApiKeyRecord[];
  routes: readonly { model: string; peers: readonly number[] }[];
  /** Tenants whose calls take the TypeScript path (PII rewriting, detectors, spans); "*": every tenant. */
  slowPathTenants?: ReadonlySet<string>;
  /** Calls without a tenant (authentication off) take the TypeScript path too. */
  noTenantSlowPath?: boolean;
  verifiedTokens?: readonly VerifiedToken[];
  /** Tenant name -> its slot in the rate-limit buckets shared with TypeScript (src/security/shared-rate-buckets.ts). */
  bucketSlots?: ReadonlyMap<string, number>;
}

class BlobWriter {
  private buf = Buffer.alloc(4096);
  private pos = 0;

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  u8(v: number): void {
    this.room(1);
    this.buf.writeUInt8(v, this.pos);
    this.pos += 1;
  }
  u16(v: number): void {
    this.room(2);
    this.buf.writeUInt16LE(v, this.pos);
    this.pos += 2;
  }
  u32(v: number): void {
    this.room(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
  }
  u64(v: number): void {
    this.room(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.pos);
    this.pos += 8;
  }
  f64(v: number): void {
    this.room(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    if (b.length > 0xffff) throw new RangeError(`policy table string longer than 65535 bytes: ${s.slice(0, 40)}...`);
    this.u16(b.length);
    this.bytes(b);
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  done(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

export function compilePolicyTable(inputs: PolicyInputs): Buffer {
  const sec = inputs.security;
  const tenants = sec.tenants;
  const index = new Map(tenants.map((t, i) => [t.name, i]));
  const limited = sec.rateLimits.enabled;
  let flags = 0;
  if (sec.apiKeys.enabled || sec.jwt.enabled) flags |= PolicyFlag.AUTH_REQUIRED;
  if (sec.apiKeys.enabled) flags |= PolicyFlag.API_KEYS;
  if (sec.jwt.enabled) flags |= PolicyFlag.JWT;
  if (sec.audit.enabled) flags |= PolicyFlag.AUDIT_REFUSALS;
  if (sec.audit.enabled && sec.audit.allowedRequests) flags |= PolicyFlag.AUDIT_ALLOWED;
  const slow = inputs.slowPathTenants ?? new Set<string>();
  const allSlow = slow.has('*');
  if (allSlow || inputs.noTenantSlowPath === true) flags |= PolicyFlag.NO_TENANT_SLOW;
  const tokens = inputs.verifiedTokens ?? [];
  const keys = sec.apiKeys.enabled ? inputs.apiKeys : [];
  const w = new BlobWriter();
  w.u32(POLICY_MAGIC);
  w.u16(POLICY_VERSION);
  w.u16(flags);
  w.u64(inputs.generation);
  w.u32(tenants.length);
  w.u32(inputs.routes.length);
  w.u32(keys.length);
  w.u32(tokens.length);
  for (const t of tenants) {
    const own = sec.rateLimits.tenants[t.name];
    const d = sec.rateLimits.default;
    w.u32(t.id);
    w.u32((t.models.includes('*') ? 1 : 0) | (allSlow || slow.has(t.name) ? 2 : 0) | (limited ? 4 : 0));
    w.f64(own?.requestsPerSecond ?? d.requestsPerSecond);
    w.f64(own?.burst ?? d.burst);
    w.f64(own?.maxRequestBytes ?? d.maxRequestBytes);
    w.str(t.name);
    const models = t.models.filter((m) => m !== '*');
    w.u32(models.length);
    for (const m of models) w.str(m);
    w.u32(inputs.bucketSlots?.get(t.name) ?? NO_BUCKET);
  }
  for (const r of inputs.routes) {
    w.str(r.model);
    w.u32(r.peers.length);
    for (const p of r.peers) w.u32(p);
  }
  for (const k of keys) {
    w.bytes(Buffer.from(k.hash, 'hex'));
    w.str(`key:${k.id}`);
    w.str(k.tenant);
    w.u32(index.get(k.tenant) ?? NO_TENANT);
    w.u32(capBits(k.caps));
    w.f64(k.expires_at === undefined ? 0 : Math.max(1, Date.parse(k.expires_at)));
    w.u8(0);
  }
  for (const t of tokens) {
    w.bytes(t.digest);
    w.u32(index.get(t.tenant) ?? NO_TENANT);
    w.u32(capBits(t.caps));
    w.f64(t.expMs);
    w.str(t.actor);
  }
  return w.done();
}
