// The allowlist of agent certificates for mTLS: SHA-256 fingerprints, one per line, in any of
// the usual spellings (`AB:CD:...`, `abcd...`, `sha256:abcd...`), `#` comments allowed.
// Reloaded without a restart: on SIGHUP, and when a periodic stat sees the file change.
// Removing a line revokes the certificate; listeners drop its live connections on 'reload'.
import { EventEmitter } from 'node:events';
import { readFile, stat } from 'node:fs/promises';
import { SluiceError } from '../errors.ts';

export class AllowlistError extends SluiceError {
  constructor(message: string) {
    super('SLUICE_ERR_CERT_ALLOWLIST', message);
  }
}

/** Lowercase hex without separators; null when `s` is not a SHA-256 fingerprint. */
export function normalizeFingerprint(s: string): string | null {
  const hex = s.trim().replace(/^sha256:/i, '').replace(/:/g, '').toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : null;
}

export function parseAllowlist(text: string, source: string): Set<string> {
  const out = new Set<string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const fp = normalizeFingerprint(line.split(/\s+/)[0] as string);
    if (fp === null) throw new AllowlistError(`${source}:${i + 1}: not a SHA-256 fingerprint: ${JSON.stringify(line.slice(0, 80))}`);
    out.add(fp);
  });
  return out;
}

export interface AllowlistOptions {
  file: string;
  reloadSeconds?: number;
  /** Reload on SIGHUP (default true). */
  sighup?: boolean;
}

/** Events: 'reload' ({ added: string[], removed: string[] }), 'error' (Error: the last good list stays). */
export class ClientCertAllowlist extends EventEmitter {
  readonly file: string;
  private current = new Set<string>();
  private signature = '';
  private timer: NodeJS.Timeout | null = null;
  private readonly onHup = () => void this.reload(true);
  private sighup = false;

  private constructor(file: string) {
    super();
    this.file = file;
  }

  static async start(opts: AllowlistOptions): Promise<ClientCertAllowlist> {
    const a = new ClientCertAllowlist(opts.file);
    const loaded = await a.load();
    if (loaded === null) throw new AllowlistError(`${opts.file}: allowlist file not found`);
    a.current = loaded.set;
    a.signature = loaded.signature;
    a.timer = setInterval(() => void a.reload(false), (opts.reloadSeconds ?? 5) * 1000);
    a.timer.unref();
    if (opts.sighup !== false) {
      process.on('SIGHUP', a.onHup);
      a.sighup = true;
    }
    return a;
  }

  has(fingerprint: string): boolean {
    const fp = normalizeFingerprint(fingerprint);
    return fp !== null && this.current.has(fp);
  }

  get size(): number {
    return this.current.size;
  }

  /** Every allowed fingerprint (normalized): what a listener outside JS (the engine) checks against. */
  fingerprints(): string[] {
    return [...this.current];
  }

  /** Re-reads the file (if it changed, or always when `force`). */
  async reload(force = true): Promise<void> {
    try {
      if (!force) {
        const s = await stat(this.file);
        if (`${s.ino}:${s.size}:${s.mtimeMs}` === this.signature) return;
      }
      const loaded = await this.load();
      if (loaded === null) throw new AllowlistError(`${this.file}: allowlist file disappeared; keeping the last one`);
      const added = [...loaded.set].filter((f) => !this.current.has(f));
      const removed = [...this.current].filter((f) => !loaded.set.has(f));
      this.current = loaded.set;
      this.signature = loaded.signature;
      if (added.length > 0 || removed.length > 0) this.emit('reload', { added, removed });
    } catch (err) {
      this.emit('error', err);
    }
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (this.sighup) process.off('SIGHUP', this.onHup);
    this.sighup = false;
  }

  private async load(): Promise<{ set: Set<string>; signature: string } | null> {
    const s = await stat(this.file).catch(() => null);
    if (s === null) return null;
    const set = parseAllowlist(await readFile(this.file, 'utf8'), this.file);
    return { set, signature: `${s.ino}:${s.size}:${s.mtimeMs}` };
  }
}
