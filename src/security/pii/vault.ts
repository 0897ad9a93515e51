// The reversible-mode vault: the original of every token, encrypted with AES-256-GCM under a
// per-tenant key derived (HKDF-SHA256) from the vault key file, one append-only file per
// tenant (DIR/TENANT.vault.jsonl, mode 0600). Tokens are keyed by HMAC of the value under
// another per-tenant key, so the same value gives the same token within a tenant (a prompt
// and its follow-ups stay consistent) and says nothing about the value without the key.
// Each record's AAD binds it to its tenant and token: a record copied into another tenant's
// file, or under another token, does not decrypt.
import type { TenantKeyStore } from '../at-rest/tenant-key-store.ts';
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { appendFile, mkdir, open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseSegmentKey } from '../../config/segment-key.ts';
import { SluiceError } from '../../errors.ts';
import { isPiiClass, tokenLabel, type PiiClass } from './classes.ts';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const TOKEN_ID_HEX = 16;

export class PiiVaultError extends SluiceError {
  constructor(message: string, cause?: unknown) {
    super('SLUICE_ERR_PII_VAULT', message, { cause });
  }
}

/** A reversible token: `[EMAIL:0123456789abcdef]`. */
export const REVERSIBLE_TOKEN = /\[([A-Z_]{2,16}):([0-9a-f]{16})\]/g;

export function reversibleToken(cls: PiiClass, id: string): string {
  return `[${tokenLabel(cls)}:${id}]`;
}

interface VaultRecord {
  v: 1;
  /** The tenant data key version that sealed it (security.atRest); absent: the vault key file. */
  kv?: number;
  token: string;
  cls: PiiClass;
  nonce: string;
  ct: string;
  time: string;
}

/** Reads the vault key file: 32 raw bytes, or 64 hex digits / base64 text. */
export function loadVaultKey(file: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (err) {
    throw new PiiVaultError(`security.pii.vault.keyFile: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'EIO'})`, err);
  }
  if (raw.byteLength === 32) return raw;
  const k = parseSegmentKey(raw.toString('utf8'));
  if (typeof k === 'string') throw new PiiVaultError(`security.pii.vault.keyFile: ${file}: ${k}`);
  return k;
}

function derive(master: Buffer, tenant: string, purpose: 'vault-aead' | 'token-mac'): Buffer {
  return Buffer.from(hkdfSync('sha256', master, Buffer.from('sluice-pii-vault-v1'), Buffer.from(`${purpose}\0${tenant}`), 32));
}

function aad(tenant: string, token: string): Buffer {
  return Buffer.from(`sluice-pii\0${tenant}\0${token}`);
}

class TenantVault {
  readonly aeadKey: Buffer;
  readonly macKey: Buffer;
  /** token → record (ciphertext only; values are decrypted on demand). */
  readonly records = new Map<string, VaultRecord>();
  pending: string[] = [];
  /** With encryption at rest: AEAD keys of the tenant data key versions its records use. */
  readonly versionKeys = new Map<number, Buffer>();
  constructor(
    master: Buffer,
    readonly tenant: string,
    readonly file: string,
    /** The tenant data key version `master` is (undefined: the vault key file). */
    readonly keyVersion?: number,
  ) {
    this.aeadKey = derive(master, tenant, 'vault-aead');
    this.macKey = derive(master, tenant, 'token-mac');
    if (keyVersion !== undefined) this.versionKeys.set(keyVersion, this.aeadKey);
  }

  keyOf(rec: VaultRecord): Buffer {
    if (rec.kv === undefined) return this.aeadKey;
    const k = this.versionKeys.get(rec.kv);
    if (k === undefined) throw new PiiVaultError(`vault record of ${rec.token} needs tenant data key version ${rec.kv}, which is not available`);
    return k;
  }
}

function parseRecords(text: string, file: string): VaultRecord[] {
  const out: VaultRecord[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line === '') return;
    let r: Partial<VaultRecord>;
    try {
      r = JSON.parse(line) as Partial<VaultRecord>;
    } catch {
      // A torn final line (crash mid-append) never got its token used: skip only that one.
      if (i === lines.length - 1) return;
      throw new PiiVaultError(`${file}: line ${i + 1} is not valid JSON`);
    }
    if (r.v !== 1 || (r.kv !== undefined && !Number.isSafeInteger(r.kv)) || typeof r.token !== 'string' || typeof r.cls !== 'string' || !isPiiClass(r.cls) || typeof r.nonce !== 'string' || typeof r.ct !== 'string') {
      throw new PiiVaultError(`${file}: line ${i + 1} is not a vault record`);
    }
    out.push(r as VaultRecord);
  });
  return out;
}

export interface PiiVaultOptions {
  dir: string;
  keyFile: string;
  /**
   * security.atRest: each tenant's vault is keyed by its data key (tenant-key-store.ts) instead of
   * the vault key file, so rotating or destroying the tenant's key covers its vault too.
   */
  tenantKeys?: TenantKeyStore;
}

export class PiiVault {
  private readonly master: Buffer;
  private readonly dir: string;
  private readonly tenants = new Map<string, TenantVault>();
  private flushing: Promise<void> = Promise.resolve();

  private readonly tenantKeys: TenantKeyStore | undefined;

  private constructor(master: Buffer, dir: string, tenantKeys?: TenantKeyStore) {
    this.master = master;
    this.dir = dir;
    this.tenantKeys = tenantKeys;
  }

  /** Opens the vault; existing tenant files are read lazily on first use. */
  static async open(opts: PiiVaultOptions): Promise<PiiVault> {
    const master = loadVaultKey(opts.keyFile);
    await mkdir(opts.dir, { recursive: true, mode: 0o700 });
    return new PiiVault(master, opts.dir, opts.tenantKeys);
  }

  fileOf(tenant: string): string {
    return path.join(this.dir, `${encodeURIComponent(tenant)}.vault.jsonl`);
  }

  /** Loads a tenant's records (once); call before `tokenize` for that tenant. */
  async load(tenant: string): Promise<void> {
    if (this.tenants.has(tenant)) return;
    let tv: TenantVault;
    if (this.tenantKeys !== undefined) {
      // A destroyed tenant's keys are gone: its vault cannot be opened (SLUICE_ERR_AT_REST_KEY).
      const k = await this.tenantKeys.activeKey(tenant);
      tv = new TenantVault(k.key, tenant, this.fileOf(tenant), k.version);
    } else {
      tv = new TenantVault(this.master, tenant, this.fileOf(tenant));
    }
    let text = '';
    try {
      text = await readFile(tv.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new PiiVaultError(`${tv.file}: cannot read (${(err as NodeJS.ErrnoException).code})`, err);
    }
    const records = parseRecords(text, tv.file);
    if (this.tenantKeys !== undefined) {
      for (const kv of new Set(records.map((r) => r.kv).filter((v): v is number => v !== undefined))) {
        if (!tv.versionKeys.has(kv)) tv.versionKeys.set(kv, derive(await this.tenantKeys.keyFor(tenant, kv), tenant, 'vault-aead'));
      }
    }
    if (!this.tenants.has(tenant)) {
      for (const r of records) tv.records.set(r.token, r);
      this.tenants.set(tenant, tv);
    }
  }

  private tenant(tenant: string): TenantVault {
    const tv = this.tenants.get(tenant);
    if (tv === undefined) throw new PiiVaultError(`vault of tenant "${tenant}" is not loaded`);
    return tv;
  }

  /** The token for `value`; a new one is encrypted and queued for the tenant's file (see flush). */
  tokenize(tenant: string, cls: PiiClass, value: string): string {
    const tv = this.tenant(tenant);
    const id = createHmac('sha256', tv.macKey).update(`${cls}\0${value}`).digest('hex').slice(0, TOKEN_ID_HEX);
    const token = reversibleToken(cls, id);
    if (tv.records.has(token)) return token;
    const nonce = randomBytes(NONCE_BYTES);
    const c = createCipheriv('aes-256-gcm', tv.aeadKey, nonce);
    c.setAAD(aad(tenant, token));
    const ct = Buffer.concat([c.update(value, 'utf8'), c.final(), c.getAuthTag()]);
    const rec: VaultRecord = { v: 1, ...(tv.keyVersion !== undefined ? { kv: tv.keyVersion } : {}), token, cls, nonce: nonce.toString('base64'), ct: ct.toString('base64'), time: new Date().toISOString() };
    tv.records.set(token, rec);
    tv.pending.push(`${JSON.stringify(rec)}\n`);
    return token;
  }

  /** The original behind a token of this tenant, or undefined (unknown, or another tenant's). */
  reveal(tenant: string, token: string): string | undefined {
    const tv = this.tenants.get(tenant);
    const rec = tv?.records.get(token);
    if (tv === undefined || rec === undefined) return undefined;
    return decryptRecord(tv.keyOf(rec), tenant, rec);
  }

  /** Makes every queued record durable (append + fsync). Resolves when they are on disk. */
  flush(): Promise<void> {
    const batches: { file: string; data: string }[] = [];
    for (const tv of this.tenants.values()) {
      if (tv.pending.length === 0) continue;
      batches.push({ file: tv.file, data: tv.pending.join('') });
      tv.pending = [];
    }
    if (batches.length === 0) return this.flushing;
    this.flushing = this.flushing.then(async () => {
      for (const b of batches) {
        await appendFile(b.file, b.data, { mode: 0o600 });
        const fh = await open(b.file, 'r');
        try {
          await fh.datasync();
        } finally {
          await fh.close();
        }
      }
    });
    return this.flushing;
  }
}

function decryptRecord(key: Buffer, tenant: string, rec: VaultRecord): string {
  const nonce = Buffer.from(rec.nonce, 'base64');
  const ct = Buffer.from(rec.ct, 'base64');
  if (nonce.length !== NONCE_BYTES || ct.length < TAG_BYTES) throw new PiiVaultError(`vault record of ${rec.token} is malformed`);
  const d = createDecipheriv('aes-256-gcm', key, nonce);
  d.setAAD(aad(tenant, rec.token));
  d.setAuthTag(ct.subarray(ct.length - TAG_BYTES));
  try {
    return Buffer.concat([d.update(ct.subarray(0, ct.length - TAG_BYTES)), d.final()]).toString('utf8');
  } catch (err) {
    throw new PiiVaultError(`vault record of ${rec.token} does not authenticate (wrong key, or the record was altered or moved)`, err);
  }
}

/** Offline lookup for `sluice pii reveal`: reads the tenant's file and decrypts one token. */
export async function revealFromVaultFile(opts: PiiVaultOptions & { tenant: string; token: string }): Promise<string> {
  const vault = await PiiVault.open(opts);
  await vault.load(opts.tenant);
  const v = vault.reveal(opts.tenant, opts.token);
  if (v === undefined) throw new PiiVaultError(`token ${opts.token} is not in the vault of tenant "${opts.tenant}"`);
  return v;
}
