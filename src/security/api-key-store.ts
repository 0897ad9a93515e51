// The API key store: a JSON file of key records (hashes only), mode 0600. Every change is a
// read-modify-write under a lock file and lands by atomic rename, so a reader (the server's
// watcher) never sees half a file and two `sluice keys` runs never lose each other's change.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { writeFileAtomic } from '../audit/atomic-file.ts';
import { acquireLock } from '../audit/lock.ts';
import { capabilitySchema, tenantNameSchema } from '../config/schema.ts';
import { SluiceError } from '../errors.ts';
import { assertWithinScope, generateApiKey, type ApiKeyRecord } from './api-keys.ts';
import type { Capability } from './capabilities.ts';

const recordSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{12}$/),
  tenant: tenantNameSchema,
  caps: z.array(capabilitySchema).min(1),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  created_at: z.string(),
  label: z.string().optional(),
  rotated_from: z.string().optional(),
  expires_at: z.string().optional(),
  revoked_reason: z.string().optional(),
});
const storeSchema = z.object({ version: z.literal(1), keys: z.array(recordSchema) });

export class KeyStoreError extends SluiceError {
  constructor(message: string) {
    super('SLUICE_ERR_KEY_STORE', message);
  }
}

export async function readKeyStore(file: string): Promise<ApiKeyRecord[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new KeyStoreError(`${file}: cannot read key store (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new KeyStoreError(`${file}: key store is not valid JSON`);
  }
  const parsed = storeSchema.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new KeyStoreError(`${file}: key store is invalid at ${issue?.path.join('.') ?? '(root)'}: ${issue?.message ?? ''}`);
  }
  const ids = new Set<string>();
  for (const r of parsed.data.keys) {
    if (ids.has(r.id)) throw new KeyStoreError(`${file}: duplicate key id ${r.id}`);
    ids.add(r.id);
  }
  return parsed.data.keys as ApiKeyRecord[];
}

async function updateKeyStore<T>(file: string, change: (records: ApiKeyRecord[]) => { records: ApiKeyRecord[]; result: T }): Promise<T> {
  const lock = await acquireLock(`${file}.lock`, { waitMs: 5000 });
  try {
    const { records, result } = change(await readKeyStore(file));
    await writeFileAtomic(file, `${JSON.stringify({ version: 1, keys: records }, null, 2)}\n`, 0o600);
    return result;
  } finally {
    await lock.release();
  }
}

function findActive(records: ApiKeyRecord[], id: string, now: Date): ApiKeyRecord {
  const rec = records.find((r) => r.id === id);
  if (rec === undefined) throw new KeyStoreError(`no key with id ${id}`);
  if (rec.expires_at !== undefined && Date.parse(rec.expires_at) <= now.getTime()) {
    throw new KeyStoreError(`key ${id} is already revoked or expired`);
  }
  return rec;
}

export interface CreateKeyOptions {
  tenant: string;
  caps: Capability[];
  label?: string;
  expiresAt?: Date;
}

export async function createKey(file: string, opts: CreateKeyOptions, now = new Date()): Promise<{ key: string; record: ApiKeyRecord }> {
  if (!tenantNameSchema.safeParse(opts.tenant).success) throw new KeyStoreError(`invalid tenant name ${JSON.stringify(opts.tenant)}`);
  const extra: Partial<ApiKeyRecord> = {};
  if (opts.label !== undefined) extra.label = opts.label;
  if (opts.expiresAt !== undefined) extra.expires_at = opts.expiresAt.toISOString();
  const made = generateApiKey(opts.tenant, opts.caps, now, extra);
  return updateKeyStore(file, (records) => ({ records: [...records, made.record], result: made }));
}

export interface RotateKeyOptions {
  /** Capabilities of the new key: a subset of the old key's (default: the same). */
  caps?: Capability[];
  /** How long the old key keeps working (default 0: it stops now). */
  graceSeconds?: number;
}

/** Issues a replacement bound to the same tenant and at most the same capabilities; retires the old key. */
export async function rotateKey(file: string, id: string, opts: RotateKeyOptions = {}, now = new Date()): Promise<{ key: string; record: ApiKeyRecord; old: ApiKeyRecord }> {
  return updateKeyStore(file, (records) => {
    const old = findActive(records, id, now);
    const caps = opts.caps ?? old.caps;
    assertWithinScope(old, old.tenant, caps);
    const extra: Partial<ApiKeyRecord> = { rotated_from: old.id };
    if (old.label !== undefined) extra.label = old.label;
    // A rotated key never outlives its predecessor's own expiry.
    if (old.expires_at !== undefined) extra.expires_at = old.expires_at;
    const made = generateApiKey(old.tenant, caps, now, extra);
    const retireAt = new Date(now.getTime() + Math.max(0, opts.graceSeconds ?? 0) * 1000).toISOString();
    const retired: ApiKeyRecord = { ...old, expires_at: retireAt, revoked_reason: `rotated to ${made.record.id}` };
    return {
      records: [...records.map((r) => (r.id === id ? retired : r)), made.record],
      result: { ...made, old: retired },
    };
  });
}

export async function revokeKey(file: string, id: string, reason: string, now = new Date()): Promise<ApiKeyRecord> {
  return updateKeyStore(file, (records) => {
    const old = findActive(records, id, now);
    const revoked: ApiKeyRecord = { ...old, expires_at: now.toISOString(), revoked_reason: reason };
    return { records: records.map((r) => (r.id === id ? revoked : r)), result: revoked };
  });
}
