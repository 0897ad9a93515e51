#!/usr/bin/env node
// Builds the native addon with node-gyp against the headers of the Node that runs this script.
// Node's own include dir carries OpenSSL's headers, and the addon resolves the EVP symbols from
// the node binary, so no libcrypto link and no header download is needed.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const force = process.argv.includes('--force');
const addon = path.join(root, 'build', 'Release', 'sluice_native.node');
/** Newest modification time (ms) of the addon's sources: native/**, binding.gyp. */
function newestSource(dir = path.join(root, 'native')) {
  let newest = statSync(path.join(root, 'binding.gyp')).mtimeMs;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(dir);
  return newest;
}
// An install lifecycle that runs again (npm install, npx in the checkout) must not wipe a built,
// current addon from under running processes: `node-gyp rebuild` starts by deleting build/.
// A source newer than the addon, --force, or SLUICE_REBUILD=1 rebuilds.
if (!force && existsSync(addon) && process.env.SLUICE_REBUILD !== '1' && statSync(addon).mtimeMs >= newestSource()) {
  console.log('sluice: native addon is up to date (npm run build:native rebuilds it)');
  process.exit(0);
}
// On Debian as root (a fresh machine, a container build), first install the Debian packages the
// build and the tests need (scripts/install-deps.sh: idempotent, no apt call when all are there),
// so `npm install && npm test` works with nothing installed beforehand. SLUICE_NO_APT=1 skips it.
if (process.getuid?.() === 0 && existsSync('/etc/debian_version') && existsSync('/usr/bin/apt-get') && process.env.SLUICE_NO_APT !== '1') {
  const deps = spawnSync('bash', [path.join(root, 'scripts', 'install-deps.sh')], { cwd: root, stdio: 'inherit' });
  if (deps.status !== 0) {
    console.error('sluice: scripts/install-deps.sh failed (Debian packages for the native build and the tests)');
    process.exit(deps.status ?? 1);
  }
}
const require = createRequire(import.meta.url);
const gyp = require.resolve('node-gyp/bin/node-gyp.js');
const prefix = path.resolve(path.dirname(process.execPath), '..');
const args = [gyp, 'rebuild', '--jobs=max'];
if (existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
const verbs = existsSync('/usr/include/infiniband/verbs.h');
console.log(`sluice: building native addon (verbs ${verbs ? 'enabled' : 'disabled: rdma-core headers not found'})`);
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  console.error('sluice: native addon build failed; install g++, make and python3 (Debian: build-essential python3)');
  process.exit(r.status ?? 1);
}
