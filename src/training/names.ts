// What a tensor name and a transfer id may be. Ids become spool file names, so they are kept
// to a charset that is safe on every filesystem and in logs.
import { randomBytes } from 'node:crypto';
import { TransferError } from './errors.ts';

const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const NAME_RE = /^[A-Za-z0-9._:/-]{1,256}$/;
/** Attribute keys start with a letter or digit (which also rules out `__proto__`). */
export const ATTRIBUTE_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;
export const MAX_ATTRIBUTE_BYTES = 4096;

export function checkTransferId(id: string): string {
  if (!ID_RE.test(id)) throw new TransferError('INVALID_ARGUMENT', `transfer_id must be 1-64 characters of [A-Za-z0-9_-], got ${JSON.stringify(id.slice(0, 80))}`);
  return id;
}

export function checkTensorName(name: string): string {
  if (!NAME_RE.test(name)) throw new TransferError('INVALID_ARGUMENT', `tensor name must be 1-256 characters of [A-Za-z0-9._:/-], got ${JSON.stringify(name.slice(0, 80))}`);
  return name;
}

export function checkAttributes(attrs: Record<string, string>): Record<string, string> {
  let bytes = 0;
  for (const [k, v] of Object.entries(attrs)) {
    if (!ATTRIBUTE_KEY_RE.test(k)) throw new TransferError('INVALID_ARGUMENT', `tensor attribute key ${JSON.stringify(k.slice(0, 80))} must match ${ATTRIBUTE_KEY_RE.source}`);
    bytes += Buffer.byteLength(k) + Buffer.byteLength(v);
  }
  if (bytes > MAX_ATTRIBUTE_BYTES) throw new TransferError('INVALID_ARGUMENT', `tensor attributes total ${bytes} bytes; at most ${MAX_ATTRIBUTE_BYTES} allowed`);
  return attrs;
}

export function newTransferId(): string {
  return `t${Date.now().toString(36)}-${randomBytes(9).toString('base64url')}`;
}

const DATATYPE_RE = /^[A-Za-z0-9_]{0,32}$/;

/** Checks a tensor's descriptive metadata before anything is sent. */
export function checkTensorMeta(meta: { name: string; datatype: string; shape: readonly number[]; attributes: Record<string, string> }): void {
  checkTensorName(meta.name);
  if (!DATATYPE_RE.test(meta.datatype)) throw new TransferError('INVALID_ARGUMENT', `tensor datatype must be up to 32 characters of [A-Za-z0-9_], got ${JSON.stringify(meta.datatype.slice(0, 40))}`);
  if (meta.shape.length > 32 || !meta.shape.every((d) => Number.isSafeInteger(d) && d >= -1)) {
    throw new TransferError('INVALID_ARGUMENT', `tensor shape must be at most 32 integer dimensions >= -1, got [${meta.shape.slice(0, 8).join(', ')}]`);
  }
  checkAttributes(meta.attributes);
}
