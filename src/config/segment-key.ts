// The 32-byte pre-shared key of a segment, from config: `key` (hex or base64 text) or
// `keyFile` (a file holding that text, or exactly 32 raw bytes). Errors say which setting
// is wrong and what was expected.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { KEY_BYTES } from '../crypto/aead.ts';
import { ConfigError } from './errors.ts';

const HEX = /^[0-9a-fA-F]+$/;
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;
const EXPECTED = `a ${KEY_BYTES}-byte key as ${KEY_BYTES * 2} hex digits or base64 (${Math.ceil(KEY_BYTES / 3) * 4} characters)`;

/** Parses key text; returns the key or a description of what is wrong with it. */
export function parseSegmentKey(text: string): Buffer | string {
  const t = text.trim();
  if (t === '') return `expected ${EXPECTED}, got an empty string`;
  if (HEX.test(t) && t.length === KEY_BYTES * 2) return Buffer.from(t, 'hex');
  if (HEX.test(t) && t.length % 2 === 0 && t.length < KEY_BYTES * 2) {
    return `expected ${EXPECTED}, got ${t.length / 2} bytes of hex`;
  }
  if (BASE64.test(t)) {
    const key = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (key.byteLength === KEY_BYTES) return key;
    return `expected ${EXPECTED}, got ${key.byteLength} bytes of base64`;
  }
  return `expected ${EXPECTED}, got ${t.length} characters that are neither`;
}

export interface SegmentKeySettings {
  key?: string | undefined;
  keyFile?: string | undefined;
}

/**
 * Loads the key of segment `segment`. `baseDir` resolves a relative keyFile (the config
 * file's directory). Throws ConfigError naming the setting.
 */
export function loadSegmentKey(settings: SegmentKeySettings, segment: string, baseDir = process.cwd()): Buffer {
  const where = `segments.${segment}`;
  if (settings.key !== undefined && settings.keyFile !== undefined) throw new ConfigError(`${where}: set key or keyFile, not both`);
  if (settings.key !== undefined) {
    const k = parseSegmentKey(settings.key);
    if (typeof k === 'string') throw new ConfigError(`${where}.key: ${k}`);
    return k;
  }
  if (settings.keyFile === undefined) throw new ConfigError(`${where}: needs key or keyFile (the ${KEY_BYTES}-byte segment key)`);
  const file = path.resolve(baseDir, settings.keyFile);
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (err) {
    throw new ConfigError(`${where}.keyFile: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'EIO'})`);
  }
  if (raw.byteLength === KEY_BYTES) return raw; // raw key bytes (no text form is 32 bytes long)
  const k = parseSegmentKey(raw.toString('utf8'));
  raw.fill(0);
  if (typeof k === 'string') throw new ConfigError(`${where}.keyFile: ${file}: ${k}, or exactly ${KEY_BYTES} raw bytes`);
  return k;
}
