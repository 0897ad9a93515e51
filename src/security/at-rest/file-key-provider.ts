// A KEK provider backed by key files: the current KEK (32 random bytes, hex or raw, mode 0600)
// and, optionally, earlier ones still needed to unwrap keys wrapped before a KEK rotation.
// A KEK's id is the first 16 hex digits of SHA-256("sluice kek id" || key), so the store never
// names a key file, and a wrong file is told apart from a tampered wrap. Wraps are AES-256-GCM
// with a random 96-bit nonce and the context (tenant, key version) as additional data.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AtRestError, AtRestErrorCode } from './at-rest-error.ts';
import type { KeyEncryptionKeyProvider, WrappedKey } from './key-provider.ts';

export function kekId(key: Buffer): string {
  return createHash('sha256').update('sluice kek id').update(key).digest('hex').slice(0, 16);
}

/** Reads a 32-byte key from a file holding it raw or as 64 hex digits. */
export function readKeyFile(file: string): Buffer {
  const raw = readFileSync(file);
  const text = raw.toString('utf8').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (raw.length === 32) return raw;
  throw new AtRestError(AtRestErrorCode.KEY, `${file}: expected a 32-byte key (raw, or 64 hex digits)`);
}

export class FileKeyProvider implements KeyEncryptionKeyProvider {
  private readonly keys = new Map<string, Buffer>();
  readonly currentKekId: string;

  /** `current` wraps new keys; `previous` only unwrap (keep them until every tenant is re-wrapped). */
  constructor(current: Buffer, previous: readonly Buffer[] = []) {
    if (current.length !== 32) throw new AtRestError(AtRestErrorCode.KEY, 'a KEK is 32 bytes');
    this.currentKekId = kekId(current);
    this.keys.set(this.currentKekId, current);
    for (const k of previous) if (k.length === 32) this.keys.set(kekId(k), k);
  }

  static fromFiles(currentFile: string, previousFiles: readonly string[] = []): FileKeyProvider {
    return new FileKeyProvider(readKeyFile(currentFile), previousFiles.map(readKeyFile));
  }

  async wrap(dataKey: Buffer, context: string): Promise<WrappedKey> {
    const kek = this.keys.get(this.currentKekId)!;
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', kek, iv);
    c.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([c.update(dataKey), c.final()]);
    return { kekId: this.currentKekId, ciphertext: Buffer.concat([iv, body, c.getAuthTag()]).toString('base64') };
  }

  async unwrap(wrapped: WrappedKey, context: string): Promise<Buffer> {
    const kek = this.keys.get(wrapped.kekId);
    if (kek === undefined) throw new AtRestError(AtRestErrorCode.KEY, `no key-encryption key ${wrapped.kekId} (was the KEK file replaced without keeping the old one as previous?)`);
    const blob = Buffer.from(wrapped.ciphertext, 'base64');
    if (blob.length < 12 + 16 + 1) throw new AtRestError(AtRestErrorCode.FORMAT, 'wrapped key too short');
    try {
      const d = createDecipheriv('aes-256-gcm', kek, blob.subarray(0, 12));
      d.setAAD(Buffer.from(context, 'utf8'));
      d.setAuthTag(blob.subarray(blob.length - 16));
      return Buffer.concat([d.update(blob.subarray(12, blob.length - 16)), d.final()]);
    } catch {
      throw new AtRestError(AtRestErrorCode.AUTH, 'wrapped key failed authentication (tampered, or wrapped for another tenant or version)');
    }
  }
}
