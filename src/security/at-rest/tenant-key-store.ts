// Per-tenant data keys for data at rest: each tenant gets random 32-byte data keys, stored only
// wrapped by a key-encryption key from a provider (key-provider.ts), in one JSON file (mode
// 0600, changed under a lock file and replaced by atomic rename, like the API key store). Key
// versions let a tenant rotate: data sealed under an old version stays readable until it is
// re-encrypted (lazily, when read) and new data uses the newest. Destroying a tenant deletes
// every wrapped key it had: whatever was sealed under them can no longer be decrypted by anyone
// (crypto-shredding); the tombstone stays so the store says when, and refuses new keys for it.
// A server and the CLI share the file: the server re-reads it when it changes.
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { z } from 'zod';
import { writeFileAtomic } from '../../audit/atomic-file.ts';
import { acquireLock } from '../../audit/lock.ts';
import { AtRestError, AtRestErrorCode } from './at-rest-error.ts';
import { openBlob, peekHeader, sealBlob } from './at-rest-format.ts';
import type { KeyEncryptionKeyProvider } from './key-provider.ts';

const keySchema = z.strictObject({
  version: z.number().int().positive(),
  kekId: z.string().min(1),
  ciphertext: z.string().min(1),
  createdAt: z.string(),
  state: z.enum(['active', 'retired']),
});
const tenantSchema = z.strictObject({ keys: z.array(keySchema), destroyedAt: z.string().optional() });
const storeSchema = z.strictObject({ version: z.literal(1), tenants: z.record(z.string(), tenantSchema) });
type StoreFile = z.infer<typeof storeSchema>;
type TenantEntry = z.infer<typeof tenantSchema>;

export interface DataKey {
  tenant: string;
  version: number;
  key: Buffer;
}

export interface TenantKeyInfo {
  tenant: string;
  versions: { version: number; state: 'active' | 'retired'; kekId: string; createdAt: string }[];
  destroyedAt?: string;
}

function context(tenant: string, version: number): string {
  return `sluice tenant data key|${tenant}|${version}`;
}

export class TenantKeyStore {
  private cache = new Map<string, Buffer>();
  private loaded: StoreFile | undefined;
  /** inode, mtime and size of the file last read: every change is a rename to a new inode. */
  private loadedStamp = '';

  constructor(
    readonly file: string,
    private readonly provider: KeyEncryptionKeyProvider,
  ) {}

  private async read(): Promise<StoreFile> {
    let stamp: string;
    try {
      const st = await stat(this.file);
      stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, tenants: {} };
      throw err;
    }
    if (this.loaded !== undefined && stamp === this.loadedStamp) return this.loaded;
    const parsed = storeSchema.safeParse(JSON.parse(await readFile(this.file, 'utf8')));
    if (!parsed.success) throw new AtRestError(AtRestErrorCode.FORMAT, `${this.file}: not a tenant key store (${parsed.error.issues[0]?.message ?? 'invalid'})`);
    // Another process changed the file: drop unwrapped keys it may have destroyed or retired.
    this.cache = new Map();
    this.loaded = parsed.data;
    this.loadedStamp = stamp;
    return parsed.data;
  }

  /** Read-modify-write under the store's lock. */
  private async update<T>(change: (s: StoreFile) => Promise<T>): Promise<T> {
    const lock = await acquireLock(`${this.file}.lock`, { waitMs: 5000 });
    try {
      this.loaded = undefined;
      const s = await this.read();
      const result = await change(s);
      await writeFileAtomic(this.file, `${JSON.stringify(s, null, 2)}\n`, 0o600);
      this.loaded = undefined;
      this.cache = new Map();
      return result;
    } finally {
      await lock.release();
    }
  }

  private async unwrap(tenant: string, entry: TenantEntry, version: number): Promise<Buffer> {
    const id = `${tenant}\0${version}`;
    const hit = this.cache.get(id);
    if (hit !== undefined) return hit;
    const k = entry.keys.find((x) => x.version === version);
    if (k === undefined) throw new AtRestError(AtRestErrorCode.KEY, `tenant ${tenant} has no data key version ${version}`);
    const key = await this.provider.unwrap({ kekId: k.kekId, ciphertext: k.ciphertext }, context(tenant, version));
    this.cache.set(id, key);
    return key;
  }

  private static live(s: StoreFile, tenant: string): TenantEntry | undefined {
    const e = s.tenants[tenant];
    if (e?.destroyedAt !== undefined) throw new AtRestError(AtRestErrorCode.KEY, `tenant ${tenant}'s data keys were destroyed at ${e.destroyedAt}: its data at rest is unreadable`);
    return e;
  }

  /** The tenant's active data key, created on first use. */
  async activeKey(tenant: string): Promise<DataKey> {
    const s = await this.read();
    const e = TenantKeyStore.live(s, tenant);
    const active = e?.keys.find((k) => k.state === 'active');
    if (e !== undefined && active !== undefined) return { tenant, version: active.version, key: await this.unwrap(tenant, e, active.version) };
    return this.update(async (fresh) => {
      const entry = TenantKeyStore.live(fresh, tenant) ?? (fresh.tenants[tenant] = { keys: [] });
      const existing = entry.keys.find((k) => k.state === 'active');
      if (existing !== undefined) return { tenant, version: existing.version, key: await this.unwrap(tenant, entry, existing.version) };
      const version = Math.max(0, ...entry.keys.map((k) => k.version)) + 1;
      const key = randomBytes(32);
      const wrapped = await this.provider.wrap(key, context(tenant, version));
      entry.keys.push({ version, kekId: wrapped.kekId, ciphertext: wrapped.ciphertext, createdAt: new Date().toISOString(), state: 'active' });
      return { tenant, version, key };
    });
  }

  /** A tenant's data key of a given version (any state, while the tenant is not destroyed). */
  async keyFor(tenant: string, version: number): Promise<Buffer> {
    const s = await this.read();
    const e = TenantKeyStore.live(s, tenant);
    if (e === undefined) throw new AtRestError(AtRestErrorCode.KEY, `tenant ${tenant} has no data keys`);
    return this.unwrap(tenant, e, version);
  }

  /**
   * Rotates a tenant's key. `newKey: false` re-wraps every version under the provider's current
   * KEK (after a KEK rotation); `newKey: true` also makes a new active version, retiring the old
   * ones, whose data is re-encrypted as it is read (reencrypt()).
   */
  async rotate(tenant: string, opts: { newKey: boolean }): Promise<{ version: number; rewrapped: number }> {
    return this.update(async (s) => {
      const e = TenantKeyStore.live(s, tenant) ?? (s.tenants[tenant] = { keys: [] });
      let rewrapped = 0;
      for (const k of e.keys) {
        const key = await this.provider.unwrap({ kekId: k.kekId, ciphertext: k.ciphertext }, context(tenant, k.version));
        const w = await this.provider.wrap(key, context(tenant, k.version));
        k.kekId = w.kekId;
        k.ciphertext = w.ciphertext;
        rewrapped++;
      }
      let version = e.keys.find((k) => k.state === 'active')?.version ?? 0;
      if (opts.newKey || version === 0) {
        for (const k of e.keys) k.state = 'retired';
        version = Math.max(0, ...e.keys.map((k) => k.version)) + 1;
        const w = await this.provider.wrap(randomBytes(32), context(tenant, version));
        e.keys.push({ version, kekId: w.kekId, ciphertext: w.ciphertext, createdAt: new Date().toISOString(), state: 'active' });
      }
      return { version, rewrapped };
    });
  }

  /** Crypto-shreds a tenant: deletes every wrapped data key, keeps a tombstone. Returns the versions destroyed. */
  async destroy(tenant: string): Promise<number> {
    return this.update(async (s) => {
      const e = s.tenants[tenant];
      const n = e?.keys.length ?? 0;
      s.tenants[tenant] = { keys: [], destroyedAt: e?.destroyedAt ?? new Date().toISOString() };
      return n;
    });
  }

  async list(): Promise<TenantKeyInfo[]> {
    const s = await this.read();
    return Object.entries(s.tenants).map(([tenant, e]) => ({
      tenant,
      versions: e.keys.map((k) => ({ version: k.version, state: k.state, kekId: k.kekId, createdAt: k.createdAt })),
      ...(e.destroyedAt !== undefined ? { destroyedAt: e.destroyedAt } : {}),
    }));
  }

  /** Encrypts a whole buffer for `tenant` under its active key. */
  async seal(tenant: string, plaintext: Uint8Array): Promise<Buffer> {
    const k = await this.activeKey(tenant);
    return sealBlob(k.key, tenant, k.version, plaintext);
  }

  /** Decrypts a blob sealed by seal(); `tenant`, when given, must be the blob's owner. */
  async open(blob: Uint8Array, tenant?: string): Promise<Buffer> {
    const h = peekHeader(blob);
    if (tenant !== undefined && h.tenant !== tenant) throw new AtRestError(AtRestErrorCode.AUTH, `data belongs to tenant ${h.tenant}, not ${tenant}`);
    return (await openBlob(blob, (t, v) => this.keyFor(t, v))).plaintext;
  }

  /** Lazy re-encryption: a blob under a retired version comes back sealed under the active one (else undefined). */
  async reencrypt(blob: Uint8Array): Promise<Buffer | undefined> {
    const h = peekHeader(blob);
    const active = await this.activeKey(h.tenant);
    if (h.keyVersion === active.version) return undefined;
    const plain = await this.open(blob);
    return sealBlob(active.key, h.tenant, active.version, plain);
  }
}
