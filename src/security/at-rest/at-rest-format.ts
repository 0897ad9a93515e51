// The format of data encrypted at rest under a tenant's data key: a header, then records, each
// sealed with AES-256-GCM. Records let a writer append (a spooled tensor arrives in chunks and
// resumes after a restart) while a reader still detects reordering, removal and truncation:
//
//   header:  "SLAR" | format u8 = 1 | reserved u8 = 0 | tenant length u16 | tenant (UTF-8)
//            | key version u32 | nonce prefix (8 random bytes)
//   record:  plaintext length u32 | flags u8 (bit 0: FINAL) | ciphertext | tag (16)
//
// Record i's nonce is prefix || u32be(i); its additional data is the whole header || u32be(i)
// || length || flags, so a record moved, replayed from another file or relabelled as another
// tenant's fails its tag. A complete blob ends with a FINAL record (possibly empty); a reader
// that requires it reports a blob cut after any record. At most 2^32 records per blob.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { AtRestError, AtRestErrorCode } from './at-rest-error.ts';

export const MAGIC = Buffer.from('SLAR', 'latin1');
const FORMAT = 1;
const RECORD_HEAD = 5;
const TAG = 16;
/** Largest plaintext one record holds (bounds what a reader allocates from a length field). */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;

export interface AtRestHeader {
  tenant: string;
  keyVersion: number;
  noncePrefix: Buffer;
}

export function encodeHeader(h: AtRestHeader): Buffer {
  const t = Buffer.from(h.tenant, 'utf8');
  if (t.length === 0 || t.length > 1024) throw new AtRestError(AtRestErrorCode.FORMAT, 'tenant name must be 1-1024 bytes');
  const out = Buffer.alloc(4 + 1 + 1 + 2 + t.length + 4 + 8);
  MAGIC.copy(out, 0);
  out[4] = FORMAT;
  out.writeUInt16BE(t.length, 6);
  t.copy(out, 8);
  out.writeUInt32BE(h.keyVersion >>> 0, 8 + t.length);
  h.noncePrefix.copy(out, 12 + t.length);
  return out;
}

/** Parses the header at the start of `buf`; returns it with its length. */
export function decodeHeader(buf: Uint8Array): { header: AtRestHeader; length: number } {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 8 || !b.subarray(0, 4).equals(MAGIC)) throw new AtRestError(AtRestErrorCode.FORMAT, 'not data encrypted at rest by sluice (no SLAR header)');
  if (b[4] !== FORMAT || b[5] !== 0) throw new AtRestError(AtRestErrorCode.FORMAT, `unsupported at-rest format ${b[4]}`);
  const tl = b.readUInt16BE(6);
  const length = 8 + tl + 4 + 8;
  if (tl === 0 || b.length < length) throw new AtRestError(AtRestErrorCode.FORMAT, 'truncated at-rest header');
  return {
    header: { tenant: b.toString('utf8', 8, 8 + tl), keyVersion: b.readUInt32BE(8 + tl), noncePrefix: Buffer.from(b.subarray(12 + tl, length)) },
    length,
  };
}

export function newHeader(tenant: string, keyVersion: number): AtRestHeader {
  return { tenant, keyVersion, noncePrefix: randomBytes(8) };
}

function nonce(prefix: Buffer, index: number): Buffer {
  const n = Buffer.alloc(12);
  prefix.copy(n, 0);
  n.writeUInt32BE(index >>> 0, 8);
  return n;
}

function aad(headerBytes: Buffer, index: number, head: Buffer): Buffer {
  const i = Buffer.alloc(4);
  i.writeUInt32BE(index >>> 0, 0);
  return Buffer.concat([headerBytes, i, head]);
}

/** Seals record `index` of a blob whose encoded header is `headerBytes`. */
export function sealRecord(key: Buffer, header: AtRestHeader, headerBytes: Buffer, index: number, plaintext: Uint8Array, final: boolean): Buffer {
  if (plaintext.length > MAX_RECORD_BYTES) throw new AtRestError(AtRestErrorCode.FORMAT, `a record holds at most ${MAX_RECORD_BYTES} bytes`);
  if (index > 0xffffffff) throw new AtRestError(AtRestErrorCode.FORMAT, 'too many records in one blob');
  const head = Buffer.alloc(RECORD_HEAD);
  head.writeUInt32BE(plaintext.length, 0);
  head[4] = final ? 1 : 0;
  const c = createCipheriv('aes-256-gcm', key, nonce(header.noncePrefix, index));
  c.setAAD(aad(headerBytes, index, head));
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([head, body, c.getAuthTag()]);
}

export interface OpenedRecords {
  header: AtRestHeader;
  /** Plaintext of every complete record, in order. */
  records: Buffer[];
  /** Whether the blob ended with its FINAL record. */
  complete: boolean;
  /** Bytes of `buf` the header and complete records take (a torn record after them is ignored). */
  validLength: number;
}

/**
 * Opens every record of a blob. `keyFor` gives the data key for the header's tenant and key
 * version (or throws). A torn last record (a crash mid-append) is left out and reported through
 * `validLength`; any record that fails its tag, or data after the FINAL record, is an error.
 */
export async function openRecords(buf: Uint8Array, keyFor: (tenant: string, version: number) => Promise<Buffer>): Promise<OpenedRecords> {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const { header, length } = decodeHeader(b);
  const headerBytes = b.subarray(0, length);
  const key = await keyFor(header.tenant, header.keyVersion);
  const records: Buffer[] = [];
  let p = length;
  let complete = false;
  for (let index = 0; p < b.length; index++) {
    if (complete) throw new AtRestError(AtRestErrorCode.FORMAT, 'data after the final record');
    if (b.length - p < RECORD_HEAD) break; // torn
    const len = b.readUInt32BE(p);
    const flags = b[p + 4]!;
    if (len > MAX_RECORD_BYTES || (flags & ~1) !== 0) throw new AtRestError(AtRestErrorCode.FORMAT, `record ${index} has a bad head`);
    const end = p + RECORD_HEAD + len + TAG;
    if (end > b.length) break; // torn
    try {
      const d = createDecipheriv('aes-256-gcm', key, nonce(header.noncePrefix, index));
      d.setAAD(aad(headerBytes, index, b.subarray(p, p + RECORD_HEAD)));
      d.setAuthTag(b.subarray(end - TAG, end));
      records.push(Buffer.concat([d.update(b.subarray(p + RECORD_HEAD, end - TAG)), d.final()]));
    } catch {
      throw new AtRestError(AtRestErrorCode.AUTH, `record ${index} failed authentication (tampered, moved, or another tenant's key)`);
    }
    complete = (flags & 1) === 1;
    p = end;
  }
  return { header, records, complete, validLength: p };
}

/** Encrypts a whole buffer as one complete blob (vault entries, evidence packs). */
export function sealBlob(key: Buffer, tenant: string, keyVersion: number, plaintext: Uint8Array, recordBytes = 1024 * 1024): Buffer {
  const header = newHeader(tenant, keyVersion);
  const hb = encodeHeader(header);
  const parts: Buffer[] = [hb];
  let index = 0;
  for (let off = 0; off < plaintext.length; off += recordBytes) parts.push(sealRecord(key, header, hb, index++, plaintext.subarray(off, Math.min(plaintext.length, off + recordBytes)), false));
  parts.push(sealRecord(key, header, hb, index, new Uint8Array(0), true));
  return Buffer.concat(parts);
}

/** Decrypts a complete blob; a cut or tampered blob is an error. */
export async function openBlob(blob: Uint8Array, keyFor: (tenant: string, version: number) => Promise<Buffer>): Promise<{ tenant: string; keyVersion: number; plaintext: Buffer }> {
  const r = await openRecords(blob, keyFor);
  if (!r.complete || r.validLength !== blob.length) throw new AtRestError(AtRestErrorCode.FORMAT, 'encrypted blob is truncated');
  return { tenant: r.header.tenant, keyVersion: r.header.keyVersion, plaintext: Buffer.concat(r.records) };
}

/** The header of a blob (tenant and key version), without decrypting. */
export function peekHeader(blob: Uint8Array): AtRestHeader {
  return decodeHeader(blob).header;
}
