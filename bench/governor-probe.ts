// What the front's training bulk governor saw and did during one phase, read from the node's
// scrape once a second (sluice_bulk_share_ratio and the sluice_bulk_governor_* families): the
// p99 it acted on, the share it granted, its cuts and the cuts it undid as futile. Beside the
// client's own p99 over the same 1 s windows, it says whether the governor's signal (the
// ingress round trip) sees the delay the client sees.
import { percentile } from './h2load.ts';

export interface GovernorPhase {
  /** Median over the phase of the governor's 1 s p99, ms (NaN when it never had enough samples). */
  p99MsMedian: number;
  /** Bulk share p50 and minimum over the samples. */
  shareP50: number;
  shareMin: number;
  cuts: number;
  futileCuts: number;
  samples: number;
}

interface Reading {
  share: number;
  p99Ms: number;
  cuts: number;
  futile: number;
}

function value(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*segment="training"[^}]*\\})? ([\\d.e+-]+|NaN)$`, 'm').exec(text);
  return m === null ? Number.NaN : Number(m[1]);
}

async function read(metricsAddress: string): Promise<Reading> {
  const text = await (await fetch(`http://${metricsAddress}/metrics`)).text();
  return {
    share: value(text, 'sluice_bulk_share_ratio'),
    p99Ms: value(text, 'sluice_bulk_governor_p99_seconds') * 1000,
    cuts: value(text, 'sluice_bulk_governor_cuts_total'),
    futile: value(text, 'sluice_bulk_governor_futile_cuts_total'),
  };
}

export class GovernorProbe {
  #readings: Reading[] = [];
  #first: Reading | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(readonly metricsAddress: string, readonly intervalMs = 1000) {}

  async start(): Promise<void> {
    this.#readings = [];
    this.#first = await read(this.metricsAddress);
    this.#timer = setInterval(() => void read(this.metricsAddress).then((r) => this.#readings.push(r), () => {}), this.intervalMs);
  }

  async stop(): Promise<GovernorPhase> {
    clearInterval(this.#timer);
    const last = await read(this.metricsAddress);
    const first = this.#first ?? last;
    const rs = [...this.#readings, last];
    const sorted = (xs: number[]) => xs.filter(Number.isFinite).sort((a, b) => a - b);
    const p99s = sorted(rs.map((r) => r.p99Ms));
    const shares = sorted(rs.map((r) => r.share));
    return {
      p99MsMedian: p99s.length > 0 ? percentile(p99s, 50) : Number.NaN,
      shareP50: shares.length > 0 ? percentile(shares, 50) : Number.NaN,
      shareMin: shares[0] ?? Number.NaN,
      cuts: last.cuts - first.cuts,
      futileCuts: last.futile - first.futile,
      samples: rs.length,
    };
  }
}

/** The client's p99 over consecutive 1 s windows of scheduled start, median over the windows. */
export function medianWindowP99(latencies: readonly number[], scheduledAtMs: readonly number[], windowMs = 1000): number {
  const windows = new Map<number, number[]>();
  latencies.forEach((l, i) => {
    const w = Math.floor((scheduledAtMs[i] ?? 0) / windowMs);
    let xs = windows.get(w);
    if (xs === undefined) windows.set(w, (xs = []));
    xs.push(l);
  });
  const p99s = [...windows.values()].filter((xs) => xs.length >= 20).map((xs) => percentile(xs.sort((a, b) => a - b), 99));
  return p99s.length > 0 ? percentile(p99s.sort((a, b) => a - b), 50) : Number.NaN;
}
