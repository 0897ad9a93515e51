#!/usr/bin/env node
// Runs every test file under test/ with node's test runner through tsx, then the RDMA suite
// (test/rdma-guest/*.guest.ts) inside one boot of the soft-RoCE VM harness (scripts/rxe-vm.sh).
// Node 20 does not expand globs, so the file lists are built here.
// Usage: node scripts/run-tests.mjs [substring filters...]
// The RDMA suite runs when no filter is given or a filter matches one of its files; it is
// reported as skipped (with the reason) when the harness cannot run here, and that skip is a
// failure when SLUICE_REQUIRE_RDMA=1 (CI). It runs after the host suite, not beside it: the
// guest is an emulator (TCG) and needs both cores to finish in good time.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const GUEST_DIR = path.join('test', 'rdma-guest');
/** Guest boot deadline (s): the whole suite under TCG takes a few minutes; this bounds a hang. */
const GUEST_TIMEOUT_S = Number(process.env.SLUICE_RDMA_TIMEOUT_S ?? 1500);

function walk(dir, suffix) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p, suffix));
    else if (name.endsWith(suffix)) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const matches = (f) => filters.length === 0 || filters.some((s) => f.includes(s));
const hostFiles = walk(path.join(root, 'test'), '.test.ts')
  .map((f) => path.relative(root, f))
  .filter(matches);
const guestFiles = walk(path.join(root, GUEST_DIR), '.guest.ts')
  .map((f) => path.relative(root, f))
  .filter(matches);
if (hostFiles.length === 0 && guestFiles.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

let failed = false;
if (hostFiles.length > 0) {
  const concurrency = process.env.SLUICE_TEST_CONCURRENCY ?? '2';
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-timeout=600000', ...hostFiles],
    { cwd: root, stdio: 'inherit' },
  );
  if (r.status !== 0) failed = true;
}

/** Why the RDMA suite cannot run here, or undefined when it can. */
function rdmaUnavailable() {
  try {
    const addon = createRequire(import.meta.url)(path.join(root, 'build', 'Release', 'sluice_native.node'));
    if (addon.withVerbs !== true) return 'the native addon was built without verbs (install libibverbs-dev, then npm run build:native)';
  } catch (err) {
    return `the native addon does not load (${err.message.split('\n')[0]}; run npm install)`;
  }
  const p = spawnSync(path.join(root, 'scripts', 'rxe-vm.sh'), ['probe'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  if (p.status === 0) return undefined;
  const said = `${p.stdout ?? ''}${p.stderr ?? ''}`.trim().replace(/^unavailable: /, '');
  return said !== '' ? said : `the harness probe failed (${p.error?.message ?? `exit ${p.status ?? p.signal}`})`;
}

if (guestFiles.length > 0) {
  const required = process.env.SLUICE_REQUIRE_RDMA === '1';
  const reason = rdmaUnavailable();
  if (reason !== undefined) {
    if (required) {
      console.error(`# rdma suite (soft-RoCE guest): FAILED: SLUICE_REQUIRE_RDMA=1 but the VM harness cannot run: ${reason}`);
      failed = true;
    } else {
      console.log(`# rdma suite (soft-RoCE guest): skipped ${guestFiles.length} files: ${reason} (set SLUICE_REQUIRE_RDMA=1 to make this a failure)`);
    }
  } else {
    console.log(`# rdma suite (soft-RoCE guest): ${guestFiles.length} files in one VM boot`);
    const started = Date.now();
    const r = spawnSync(
      path.join(root, 'scripts', 'rxe-vm.sh'),
      [
        'run',
        '--timeout',
        String(GUEST_TIMEOUT_S),
        '--',
        process.execPath,
        '--import',
        'tsx',
        '--test',
        '--test-concurrency=1',
        '--test-timeout=900000',
        ...guestFiles,
      ],
      { cwd: root, stdio: 'inherit' },
    );
    const took = ((Date.now() - started) / 1000).toFixed(0);
    if (r.status !== 0) {
      console.error(`# rdma suite (soft-RoCE guest): FAILED (exit ${r.status ?? r.signal}) after ${took} s`);
      failed = true;
    } else {
      console.log(`# rdma suite (soft-RoCE guest): passed in ${took} s (boot, asset preparation and the suite)`);
    }
  }
}
process.exit(failed ? 1 : 0);
