// The Node client from another project, without tsx: `npm pack` (which runs `prepare`, compiling
// src/index.ts to dist/ with declarations), install the tarball into a scratch project in a
// temporary directory (offline, from the npm cache), import it with plain node and make a real
// call, and type-check a TypeScript consumer against the shipped declarations.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

const root = path.resolve(import.meta.dirname, '..', '..');

interface LockEntry {
  version?: string;
  dev?: boolean;
  dependencies?: Record<string, string>;
  [k: string]: unknown;
}

/** A lockfile for a project depending only on the tarball, with the checkout's resolutions. */
function scratchLock(tarball: string, tgz: Buffer): object {
  const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const self = lock.packages['']!;
  const packages: Record<string, LockEntry> = {
    '': { name: 'scratch-app', version: '1.0.0', dependencies: { sluice: tarball } },
    'node_modules/sluice': {
      version: self.version!,
      resolved: tarball,
      integrity: `sha512-${createHash('sha512').update(tgz).digest('base64')}`,
      hasInstallScript: true,
      license: self.license,
      dependencies: self.dependencies!,
      bin: self.bin,
      engines: self.engines,
    },
  };
  for (const [key, entry] of Object.entries(lock.packages)) {
    if (key === '' || entry.dev === true || !key.startsWith('node_modules/')) continue;
    packages[key] = entry;
  }
  return { name: 'scratch-app', version: '1.0.0', lockfileVersion: 3, requires: true, packages };
}
const work = mkdtempSync(path.join(tmpdir(), 'sluice-pack-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('the packed tarball installs into a scratch project and its client runs under plain node', { timeout: 600_000 }, async () => {
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8', timeout: 300_000 })) as { filename: string; files: { path: string }[] }[];
  const files = packed[0]!.files.map((f) => f.path);
  for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/training/client.js', 'proto/sluice/v1/tensor_transfer.proto', 'bin/sluice.mjs', 'package.json']) assert.ok(files.includes(f), `${f} is in the tarball`);
  assert.ok(!files.some((f) => f.startsWith('test/') || f.startsWith('bench/') || f.startsWith('node_modules/')), 'no tests, benchmarks or dependencies in the tarball');

  const app = path.join(work, 'app');
  mkdirSync(app);
  const tarball = `file:../${packed[0]!.filename}`;
  // The checkout pins ws (uWebSockets.js's dependency) by an override; the scratch project pins it
  // the same way so the lock's resolution stands and the cached tarball is used (online, npm
  // would simply fetch the version uWebSockets.js asks for).
  const overrides = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { overrides?: Record<string, string> }).overrides ?? {};
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'scratch-app', version: '1.0.0', private: true, type: 'module', dependencies: { sluice: tarball }, overrides }));
  // Offline: every dependency comes from the npm cache the checkout's own install filled. That
  // cache holds the tarballs the checkout's lockfile names (not registry metadata), so the scratch
  // project gets a lockfile with the same resolutions: sluice's production dependencies as the
  // checkout resolved them. The client needs no native addon, so the package's install script
  // (node-gyp) is not run.
  writeFileSync(path.join(app, 'package-lock.json'), JSON.stringify(scratchLock(tarball, readFileSync(path.join(work, packed[0]!.filename)))));
  const install = spawnSync('npm', ['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: app, encoding: 'utf8', timeout: 300_000 });
  assert.equal(install.status, 0, `npm install failed:\n${install.stdout}\n${install.stderr}`);
  assert.ok(existsSync(path.join(app, 'node_modules', 'sluice', 'dist', 'index.js')));
  assert.ok(!existsSync(path.join(app, 'node_modules', 'typescript')), 'devDependencies stay out');

  writeFileSync(
    path.join(app, 'main.mjs'),
    `import { connect, TransferError, SluiceClient } from 'sluice';
const client = connect('127.0.0.1:9', {});
if (!(client instanceof SluiceClient)) throw new Error('not a SluiceClient');
try {
  await client.list();
  console.log('unexpected answer');
} catch (err) {
  console.log(JSON.stringify({ isTransferError: err instanceof TransferError, status: err.status }));
} finally {
  client.close();
}
`,
  );
  const run = spawnSync(process.execPath, ['main.mjs'], { cwd: app, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_OPTIONS: '' } });
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim()), { isTransferError: true, status: 'UNAVAILABLE' });

  writeFileSync(
    path.join(app, 'check.ts'),
    `import { connect, type PushResult, type TransferStatus } from 'sluice';
const client = connect('127.0.0.1:8003');
const pushed: Promise<PushResult> = client.push('peer', 'tensor', new Uint8Array(4));
const listed: Promise<TransferStatus[]> = client.list();
// @ts-expect-error push needs a peer, a name and a source
void client.push('peer');
void pushed;
void listed;
`,
  );
  writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: false, types: [] }, files: ['check.ts'] }));
  const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], { cwd: app, encoding: 'utf8', timeout: 120_000 });
  assert.equal(tsc.status, 0, `the declarations type-check a consumer:\n${tsc.stdout}${tsc.stderr}`);
  assert.ok(readdirSync(path.join(app, 'node_modules', 'sluice', 'dist')).includes('index.d.ts'));
});
