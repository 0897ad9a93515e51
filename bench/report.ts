// Helpers shared by the bench suites: medians, a plain-text table, and results written as JSON
// to bench/results/<suite>.json with the machine they were measured on.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'results');

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function machine(): Record<string, unknown> {
  return {
    date: new Date().toISOString(),
    node: process.version,
    openssl: process.versions.openssl,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    loadavg: os.loadavg(),
  };
}

/**
 * Writes bench/results/<suite>.json (the latest run) and a dated copy under
 * bench/results/history/ (every run is kept), and returns the latest's path.
 */
export function writeResults(suite: string, results: unknown, opts: { topLevel?: boolean } = {}): string {
  mkdirSync(path.join(RESULTS_DIR, 'history'), { recursive: true });
  const file = path.join(RESULTS_DIR, `${suite}.json`);
  const m = machine();
  // topLevel: the result's fields also at the top, for suites whose consumers read them there.
  const doc = opts.topLevel === true && typeof results === 'object' && results !== null ? { suite, machine: m, ...results, results } : { suite, machine: m, results };
  const text = `${JSON.stringify(doc, null, 2)}\n`;
  writeFileSync(file, text);
  writeFileSync(path.join(RESULTS_DIR, 'history', `${suite}-${String(m.date).replace(/[:.]/g, '-')}.json`), text);
  return file;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 20 && bytes % 2 ** 20 === 0) return `${bytes / 2 ** 20} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} B`;
}
