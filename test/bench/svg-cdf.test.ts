// The CDF plot's layout, checked on the SVG's geometry (what a person saw wrong on the rendered
// PNGs: overlapping x labels, a legend over a curve): x tick labels never overlap, whatever the
// latency range; the legend lies above the plot area; every curve point lies inside it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { cdfSvg, labelWidth, type CdfSeries } from '../../bench/svg-cdf.ts';

function geometry(svg: string) {
  const ticks = [...svg.matchAll(/<text class="xtick" x="([\d.]+)"[^>]*>([^<]+)<\/text>/g)].map((m) => ({ x: Number(m[1]), label: m[2]! }));
  const plot = /<rect class="plot" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/.exec(svg)!;
  const [px, py, pw, ph] = plot.slice(1).map(Number) as [number, number, number, number];
  const legendYs = [...svg.matchAll(/<g class="legend"><line x1="[\d.]+" y1="([\d.]+)"/g)].map((m) => Number(m[1]));
  const points = [...svg.matchAll(/points="([^"]+)"/g)].flatMap((m) => m[1]!.split(' ').map((xy) => xy.split(',').map(Number) as [number, number]));
  return { ticks, px, py, pw, ph, legendYs, points };
}

function check(series: CdfSeries[], marker?: number): void {
  const svg = cdfSvg({ title: 't', series, ...(marker !== undefined ? { marker: { atMs: marker, label: 'target' } } : {}) });
  const g = geometry(svg);
  assert.ok(g.ticks.length >= 2, 'some x labels');
  for (let i = 1; i < g.ticks.length; i++) {
    const a = g.ticks[i - 1]!;
    const b = g.ticks[i]!;
    assert.ok(a.x + labelWidth(a.label) / 2 <= b.x - labelWidth(b.label) / 2, `x labels ${a.label} and ${b.label} overlap`);
  }
  assert.equal(g.legendYs.length, series.length);
  for (const y of g.legendYs) assert.ok(y + 8 <= g.py, 'legend entries sit above the plot area');
  for (const [x, y] of g.points) assert.ok(x >= g.px - 0.1 && x <= g.px + g.pw + 0.1 && y >= g.py - 0.1 && y <= g.py + g.ph + 0.1, 'curve points inside the plot');
}

const spread = (lo: number, hi: number, n: number): number[] => Array.from({ length: n }, (_, i) => lo * (hi / lo) ** (i / (n - 1)));

test('the bench plots\' range (0.01 ms to 10 s, four series, a marker) lays out cleanly', () => {
  check(
    [
      { label: 'sluice pair, no bulk', values: spread(5, 600, 500), color: '#1f5fbf' },
      { label: 'sluice pair, bulk running', values: spread(10, 1800, 500), color: '#1f5fbf', dashed: true },
      { label: 'nginx grpc_pass, no bulk', values: spread(0.01, 40, 500), color: '#d9730d' },
      { label: 'nginx grpc_pass, bulk running', values: spread(0.02, 200, 500), color: '#d9730d', dashed: true },
    ],
    5,
  );
});

test('any latency range and number of series: labels never overlap, the legend never covers the plot', () => {
  fc.assert(
    fc.property(
      fc.double({ min: 0.001, max: 1000, noNaN: true }),
      fc.double({ min: 1.5, max: 1e6, noNaN: true }),
      fc.integer({ min: 1, max: 7 }),
      fc.string({ minLength: 1, maxLength: 40 }),
      (lo, factor, n, label) => {
        const series = Array.from({ length: n }, (_, i) => ({ label: `${label} ${i}`, values: spread(lo, lo * factor, 50), color: '#333' }));
        check(series);
      },
    ),
    { numRuns: 200 },
  );
});
