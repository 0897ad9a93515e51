// A minimal POSIX ustar writer and reader for evidence packs: regular files only, names up to
// 100 bytes (prefix field read, not written), sizes up to 8 GiB - 1 (octal). The reader is
// strict (header checksums in exactly the form the writer emits, magic, sizes, zero padding,
// the two zero blocks at the end, nothing after them), so it reads the archives this writer
// makes (and GNU/BSD tar reads them too); a flipped byte anywhere is refused or lands in a
// member's bytes, where the manifest's hashes catch it. It throws
// TarFormatError, never anything else, on bytes it does not accept: a pack is untrusted input.
import { SluiceError } from '../errors.ts';

const BLOCK = 512;

export class TarFormatError extends SluiceError {
  constructor(message: string) {
    super('SLUICE_ERR_TAR_FORMAT', message);
  }
}

export interface TarEntry {
  name: string;
  data: Buffer;
}

function octal(buf: Buffer, off: number, len: number, value: number): void {
  buf.write(`${value.toString(8).padStart(len - 1, '0')}\0`, off, len, 'ascii');
}

function header(name: string, size: number, mtime: number): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  if (nameBytes.length === 0 || nameBytes.length > 100) throw new TarFormatError(`tar member name must be 1-100 bytes: ${name}`);
  if (size > 0o77777777777) throw new TarFormatError(`${name}: too large for a ustar member`);
  const h = Buffer.alloc(BLOCK);
  nameBytes.copy(h, 0);
  octal(h, 100, 8, 0o644);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, Math.floor(mtime));
  h.fill(0x20, 148, 156); // checksum field counts as spaces while summing
  h[156] = 0x30; // '0': regular file
  h.write('ustar\u000000', 257, 8, 'ascii');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

/** The tar archive of `entries`, in order. `mtime` in seconds since the epoch. */
export function writeTar(entries: readonly TarEntry[], mtime = Date.now() / 1000): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(header(e.name, e.data.length, mtime), e.data);
    const pad = (BLOCK - (e.data.length % BLOCK)) % BLOCK;
    if (pad > 0) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}

function parseOctal(h: Buffer, off: number, len: number, what: string): number {
  const s = h.toString('latin1', off, off + len).replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (!/^[0-7]{1,12}$/.test(s)) throw new TarFormatError(`${what} is not an octal number`);
  return Number.parseInt(s, 8);
}

function cstring(h: Buffer, off: number, len: number): string {
  const end = h.indexOf(0, off);
  return h.toString('utf8', off, end === -1 || end > off + len ? off + len : end);
}

/** Reads every regular file of a ustar archive; directories are skipped, anything else refused. */
export function readTar(buf: Buffer): TarEntry[] {
  const out: TarEntry[] = [];
  const seen = new Set<string>();
  let off = 0;
  for (;;) {
    if (buf.length - off < BLOCK) throw new TarFormatError(`archive ends inside a header at byte ${off}`);
    const h = buf.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) {
      const next = buf.subarray(off + BLOCK, off + 2 * BLOCK);
      if (next.length !== BLOCK || !next.every((b) => b === 0)) throw new TarFormatError('archive does not end with two zero blocks');
      if (buf.subarray(off + 2 * BLOCK).some((b) => b !== 0)) throw new TarFormatError('data after the end of the archive');
      return out;
    }
    // The checksum field is outside the sum it states: accept only the exact form writeTar
    // emits (6 octal digits, NUL, space), so no byte of it can change unnoticed.
    const field = h.toString('latin1', 148, 156);
    if (!/^[0-7]{6}\0 $/.test(field)) throw new TarFormatError(`header at byte ${off}: checksum field is not 6 octal digits, NUL, space`);
    const claimed = Number.parseInt(field.slice(0, 6), 8);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    if (sum !== claimed) throw new TarFormatError(`header at byte ${off}: checksum mismatch`);
    if (h.toString('latin1', 257, 262) !== 'ustar') throw new TarFormatError(`header at byte ${off}: not a ustar header`);
    const prefix = cstring(h, 345, 155);
    const name = (prefix === '' ? '' : `${prefix}/`) + cstring(h, 0, 100);
    const size = parseOctal(h, 124, 12, `${name}: size`);
    const type = String.fromCharCode(h[156]!);
    off += BLOCK;
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (buf.length - off < padded) throw new TarFormatError(`${name}: member runs past the end of the archive`);
    if (type === '0' || type === '\0') {
      if (name === '' || name.startsWith('/') || name.split('/').includes('..')) throw new TarFormatError(`unsafe member name ${JSON.stringify(name)}`);
      if (seen.has(name)) throw new TarFormatError(`member ${name} appears twice`);
      seen.add(name);
      out.push({ name, data: Buffer.from(buf.subarray(off, off + size)) });
    } else if (type !== '5') {
      throw new TarFormatError(`${name}: member type '${type}' is not a regular file or directory`);
    }
    // Padding is zero: every byte of a pack is accounted for, so no flipped byte goes unseen.
    if (buf.subarray(off + size, off + padded).some((b) => b !== 0)) throw new TarFormatError(`${name}: non-zero padding after the member`);
    off += padded;
  }
}
