// How `sluice transfers` shows a transfer: a progress bar, bytes, rate and ETA, from
// TensorTransfer statuses polled over time. Pure formatting; the commands do the polling.
import type { TransferStatus } from '../training/client.ts';

/** States (the client's lower-case names) after which a transfer changes no more. */
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

export function isTerminal(s: TransferStatus): boolean {
  return TERMINAL.has(s.state);
}

/** 1.5 GiB, 300 MiB, 12 KiB, 17 B. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[u]}`;
}

/** `[##########..........]  50.0%` for done/total (an empty tensor is complete). */
export function progressBar(done: number, total: number, width = 24): string {
  const frac = total <= 0 ? 1 : Math.min(1, Math.max(0, done / total));
  const filled = Math.round(frac * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(1).padStart(5)}%`;
}

/** Bytes per second between two polls of one transfer (undefined until there are two). */
export class RateMeter {
  private last = new Map<string, { bytes: number; at: number; rate: number | undefined }>();

  update(s: TransferStatus, at: number): number | undefined {
    const prev = this.last.get(s.transferId);
    let rate = prev?.rate;
    if (prev !== undefined && at > prev.at && s.ackedBytes >= prev.bytes) {
      const now = ((s.ackedBytes - prev.bytes) * 1000) / (at - prev.at);
      // Smoothed so one quiet poll does not read as a stall.
      rate = rate === undefined ? now : 0.5 * rate + 0.5 * now;
    }
    this.last.set(s.transferId, { bytes: s.ackedBytes, at, rate });
    return rate;
  }
}

function formatRate(rate: number | undefined): string {
  return rate === undefined ? '' : `${formatBytes(Math.round(rate))}/s`;
}

function formatEta(s: TransferStatus, rate: number | undefined): string {
  if (isTerminal(s) || rate === undefined || rate <= 0) return '';
  const secs = Math.ceil((s.totalBytes - s.ackedBytes) / rate);
  return secs >= 3600 ? `ETA ${Math.floor(secs / 3600)}h${Math.floor((secs % 3600) / 60)}m` : secs >= 60 ? `ETA ${Math.floor(secs / 60)}m${secs % 60}s` : `ETA ${secs}s`;
}

/** One line per transfer: id, direction and peer, tensor, state, bar, bytes, rate, ETA or error. */
export function transferLine(s: TransferStatus, rate?: number): string {
  const arrow = s.direction === 'outbound' ? `-> ${s.peer}` : `<- ${s.peer}`;
  const tail = s.state === 'failed' || s.state === 'cancelled' ? (s.error ?? '') : [formatRate(rate), formatEta(s, rate)].filter((x) => x !== '').join('  ');
  return [
    s.transferId,
    arrow,
    s.tensor.name,
    s.state.toUpperCase().padEnd(10),
    progressBar(s.ackedBytes, s.totalBytes),
    `${formatBytes(s.ackedBytes)} / ${formatBytes(s.totalBytes)}`,
    tail,
  ]
    .filter((x) => x !== '')
    .join('  ');
}

/** The detail of one transfer (`sluice transfers status`). */
export function transferDetail(s: TransferStatus): string {
  const rows: [string, string][] = [
    ['transfer', s.transferId],
    ['direction', `${s.direction} (${s.direction === 'outbound' ? 'to' : 'from'} ${s.peer})`],
    ['tensor', `${s.tensor.name}${s.tensor.datatype !== '' ? ` ${s.tensor.datatype}` : ''}${s.tensor.shape.length > 0 ? ` [${s.tensor.shape.join(',')}]` : ''}`],
    ['sink', s.sink],
    ['state', s.state.toUpperCase()],
    ['progress', `${progressBar(s.ackedBytes, s.totalBytes)}  ${formatBytes(s.ackedBytes)} / ${formatBytes(s.totalBytes)} (${s.ackedBytes} / ${s.totalBytes} bytes)`],
  ];
  if (s.sha256 !== undefined && s.sha256.length > 0) rows.push(['sha256', s.sha256.toString('hex')]);
  if (s.error !== undefined && s.error !== '') rows.push(['error', s.error]);
  return rows.map(([k, v]) => `${k.padEnd(10)} ${v}`).join('\n');
}

/** What `--json` prints for a status (sha256 as hex). */
export function statusJson(s: TransferStatus): Record<string, unknown> {
  return { ...s, sha256: s.sha256?.toString('hex') };
}
