// A latency CDF as a small self-contained SVG: one line per series, log-scaled latency on x,
// cumulative fraction on y (with a tail-focused scale so p99 and p99.9 are visible), a legend,
// and an optional vertical marker (the latency target). No dependencies.
// Layout rules (checked by test/bench/svg-cdf.test.ts on the geometry, and by eye on a PNG render):
// x tick labels never overlap (decades first, then 2x and 5x where they fit); the legend sits
// above the plot area, outside it, so it never covers a curve.

export interface CdfSeries {
  label: string;
  /** Latencies in milliseconds (any order). */
  values: readonly number[];
  /** Or an already computed CDF: [latency ms, cumulative fraction] pairs in rising order. */
  points?: readonly (readonly [number, number])[];
  color: string;
  dashed?: boolean;
}

export interface CdfPlotOptions {
  title: string;
  series: readonly CdfSeries[];
  /** A vertical line, e.g. the p99 target. */
  marker?: { atMs: number; label: string };
  width?: number;
  height?: number;
}

const escape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * y is "nines": -log10(1 - q), so 0.5, 0.9, 0.99 and 0.999 are evenly spaced; that is where
 * the difference between the paths lives.
 */
const nines = (q: number): number => -Math.log10(Math.max(1e-4, 1 - q));
const Y_TICKS = [0, 0.5, 0.9, 0.99, 0.999];

/** Approximate rendered width of a label at font-size 12 (sans-serif averages ~6.6 px a character). */
export const labelWidth = (text: string): number => text.length * 6.6 + 4;

/** A tick value as a short label: 0.05, 2, 500, 1s, 20s (ms below a second). */
export function tickLabel(ms: number): string {
  if (ms >= 1000) return `${Number((ms / 1000).toPrecision(3))}s`;
  return String(Number(ms.toPrecision(3)));
}

/** X ticks that fit without overlapping: every decade, then 2x and 5x where there is room. */
export function xTicks(x0: number, x1: number, X: (ms: number) => number): { ms: number; label: string; major: boolean }[] {
  const decades: number[] = [];
  for (let e = x0; e <= x1; e++) decades.push(10 ** e);
  const minor = (k: number): number[] => {
    const out: number[] = [];
    for (let e = x0; e < x1; e++) out.push(Number((k * 10 ** e).toPrecision(3)));
    return out;
  };
  const placed: { ms: number; label: string; major: boolean; lo: number; hi: number }[] = [];
  const fits = (lo: number, hi: number): boolean => placed.every((p) => hi + 6 <= p.lo || lo >= p.hi + 6);
  const place = (ms: number, major: boolean): void => {
    const label = tickLabel(ms);
    const w = labelWidth(label);
    const c = X(ms);
    if (fits(c - w / 2, c + w / 2)) placed.push({ ms, label, major, lo: c - w / 2, hi: c + w / 2 });
  };
  // Every other decade first when decades are crowded, so the axis keeps even spacing.
  const decadeStep = decades.length > 1 && X(decades[1]!) - X(decades[0]!) < labelWidth(tickLabel(decades[decades.length - 1]!)) + 6 ? 2 : 1;
  decades.forEach((d, i) => i % decadeStep === 0 && place(d, true));
  for (const k of [5, 2]) for (const m of minor(k)) place(m, false);
  return placed.sort((a, b) => a.ms - b.ms).map(({ ms, label, major }) => ({ ms, label, major }));
}

export function cdfSvg(opts: CdfPlotOptions): string {
  const W = opts.width ?? 760;
  const H0 = opts.height ?? 440;
  // Legend above the plot: as many columns as fit, one 16 px row per line of entries.
  const entryW = Math.max(...opts.series.map((s) => 30 + labelWidth(s.label)), 100) + 16;
  const cols = Math.max(1, Math.min(opts.series.length, Math.floor((W - 80) / entryW)));
  const rows = Math.ceil(opts.series.length / cols);
  const legendTop = 34;
  const m = { left: 60, right: 24, top: legendTop + rows * 16 + 14, bottom: 48 };
  const H = H0 + rows * 16;
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const seriesValues = (s: CdfSeries): number[] => (s.points !== undefined ? s.points.map((p) => p[0]) : [...s.values]);
  const all = opts.series.flatMap(seriesValues).filter((v) => v > 0 && Number.isFinite(v));
  const lo = Math.max(0.05, Math.min(...all, opts.marker?.atMs ?? Infinity));
  const hi = Math.max(...all, opts.marker?.atMs ?? 0, lo * 10);
  const x0 = Math.floor(Math.log10(lo));
  const x1 = Math.ceil(Math.log10(hi));
  const yMax = nines(Y_TICKS[Y_TICKS.length - 1]!);
  const X = (ms: number): number => m.left + ((Math.log10(Math.max(ms, 10 ** x0)) - x0) / (x1 - x0)) * pw;
  const Y = (q: number): number => m.top + ph - (Math.min(nines(q), yMax) / yMax) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${escape(opts.title)}</text>`);
  // Grid and axes.
  const ticks = xTicks(x0, x1, X);
  for (let e = x0; e <= x1; e++) {
    for (const k of [1, 2, 5]) {
      const v = k * 10 ** e;
      if (v > 10 ** x1) continue;
      const x = X(v).toFixed(1);
      out.push(`<line x1="${x}" y1="${m.top}" x2="${x}" y2="${m.top + ph}" stroke="#${k === 1 ? 'ccc' : 'eee'}"/>`);
    }
  }
  for (const t of ticks) {
    out.push(`<text class="xtick" x="${X(t.ms).toFixed(1)}" y="${m.top + ph + 16}" text-anchor="middle" fill="#444">${t.label}</text>`);
  }
  for (const q of Y_TICKS) {
    const y = Y(q).toFixed(1);
    out.push(`<line x1="${m.left}" y1="${y}" x2="${m.left + pw}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${m.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#444">${q === 0 ? '0' : q}</text>`);
  }
  out.push(`<rect class="plot" x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${H - 10}" text-anchor="middle">latency (ms, log scale)</text>`);
  out.push(`<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">fraction of requests (tail-scaled)</text>`);
  if (opts.marker !== undefined) {
    const x = X(opts.marker.atMs).toFixed(1);
    out.push(`<line x1="${x}" y1="${m.top}" x2="${x}" y2="${m.top + ph}" stroke="#c00" stroke-dasharray="2 3"/>`);
    out.push(`<text x="${Number(x) + 4}" y="${m.top + 12}" fill="#c00">${escape(opts.marker.label)}</text>`);
  }
  // One polyline per series, at most ~400 points (every rank up to p90, then all of the tail).
  for (const s of opts.series) {
    const pts: string[] = [];
    if (s.points !== undefined) {
      for (const [ms, q] of s.points) pts.push(`${X(ms).toFixed(1)},${Y(Math.min(q, 0.9999)).toFixed(1)}`);
    } else {
      const v = [...s.values].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
      const step = Math.max(1, Math.floor(v.length / 300));
      for (let i = 0; i < v.length; i++) {
        const q = (i + 1) / v.length;
        if (i % step !== 0 && q < 0.99 && i !== v.length - 1) continue;
        pts.push(`${X(v[i]!).toFixed(1)},${Y(Math.min(q, 0.9999)).toFixed(1)}`);
      }
    }
    if (pts.length === 0) continue;
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.6"${s.dashed === true ? ' stroke-dasharray="6 3"' : ''} points="${pts.join(' ')}"/>`);
  }
  // Legend above the plot area (never over a curve).
  opts.series.forEach((s, i) => {
    const y = legendTop + Math.floor(i / cols) * 16 + 8;
    const x = m.left + (i % cols) * entryW;
    out.push(`<g class="legend"><line x1="${x}" y1="${y}" x2="${x + 24}" y2="${y}" stroke="${s.color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="6 3"' : ''}/>`);
    out.push(`<text x="${x + 30}" y="${y}" dominant-baseline="middle">${escape(s.label)}</text></g>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
