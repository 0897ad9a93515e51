// applyHeapGrowthPercent (src/node/heap-growth.ts): the factor reaches V8's heap controller of
// isolates started after it, a worker's included (the training thread is one), as V8 itself
// reports with --trace-gc-verbose; 0 leaves V8's heuristics; the config default is 200.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../src/config/load.ts';
import { applyHeapGrowthPercent } from '../../src/node/heap-growth.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const module = path.join(here, '../../src/node/heap-growth.ts');

/** The growing factors V8's heap controller used at each mark-compact of a worker started after applying `percent`. */
function workerFactors(percent: number): number[] {
  const script = `
    import { applyHeapGrowthPercent } from ${JSON.stringify(module)};
    import { Worker } from 'node:worker_threads';
    applyHeapGrowthPercent(${percent});
    const w = new Worker('const live = []; for (let i = 0; i < 200000; i++) live.push({ a: i, b: [i] }); globalThis.gc(); globalThis.gc();', { eval: true });
    await new Promise((r) => w.once('exit', r));
  `;
  const out = execFileSync(process.execPath, ['--expose-gc', '--trace-gc-verbose', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return [...out.matchAll(/\[HeapController\] Limit: .*\(([\d.]+)\)/g)].map((m) => Number(m[1]));
}

test('the factor reaches a worker started after it', () => {
  const factors = workerFactors(200);
  assert.ok(factors.length >= 2, `no heap controller lines (${factors.length})`);
  assert.ok(factors.every((f) => f === 3), `factors ${factors.join(', ')}`);
});

test('0 leaves the factor to V8', () => {
  assert.equal(applyHeapGrowthPercent(0), undefined);
  assert.throws(() => applyHeapGrowthPercent(-1), RangeError);
  assert.throws(() => applyHeapGrowthPercent(1.5), RangeError);
  assert.equal(parseConfig({ node: { name: 'x' } }).training.heapGrowthPercent, 200);
});
