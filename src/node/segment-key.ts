// The 32-byte pre-shared key of a segment, from the config (`key`: hex or base64) or a file
// (`keyFile`: the same text, or the 32 raw bytes).
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/load.ts';
import type { SegmentConfig } from '../config/schema.ts';

export const SEGMENT_KEY_BYTES = 32;

export function parseSegmentKey(text: string, where: string): Buffer {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/]{43}=?$/.test(t)) {
    const b = Buffer.from(t, 'base64');
    if (b.length === SEGMENT_KEY_BYTES) return b;
  }
  throw new ConfigError(`${where}: expected a 32-byte key as 64 hex digits or base64`);
}

export function loadSegmentKey(seg: SegmentConfig, where: string): Buffer {
  if (seg.key !== undefined && seg.keyFile !== undefined) throw new ConfigError(`${where}: give key or keyFile, not both`);
  if (seg.key !== undefined) return parseSegmentKey(seg.key, `${where}.key`);
  if (seg.keyFile !== undefined) {
    let raw: Buffer;
    try {
      raw = readFileSync(seg.keyFile);
    } catch (err) {
      throw new ConfigError(`${where}.keyFile: cannot read ${seg.keyFile} (${(err as NodeJS.ErrnoException).code ?? 'EIO'})`);
    }
    if (raw.length === SEGMENT_KEY_BYTES) return raw;
    return parseSegmentKey(raw.toString('utf8'), `${where}.keyFile (${seg.keyFile})`);
  }
  throw new ConfigError(`${where}: a segment key is required (key or keyFile)`);
}
