#!/usr/bin/env node
// Compiles the package's library entry (src/index.ts: the Node client) to JavaScript with type
// declarations in dist/, so another project can `import { connect } from 'sluice'` with plain
// node (package.json "exports" points there). Runs on `prepare` (npm install in a checkout,
// npm pack, npm publish). The CLI, the server and the tests keep running the TypeScript through
// tsx and never need dist/.
//
// It skips (exit 0, one line) when there is nothing to build yet or nothing to build with: a
// production install without devDependencies, or an image build that installs dependencies
// before copying src/ (Dockerfile). A real compile error fails it. It writes to stderr only, so
// `npm pack --json` keeps a clean stdout.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const config = path.join(root, 'tsconfig.build.json');
if (!existsSync(path.join(root, 'src', 'index.ts')) || !existsSync(config)) {
  console.error('sluice: dist/ not built (src/index.ts or tsconfig.build.json not here yet)');
  process.exit(0);
}
let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  console.error('sluice: dist/ not built (typescript is a devDependency and is not installed)');
  process.exit(0);
}
rmSync(path.join(root, 'dist'), { recursive: true, force: true });
const r = spawnSync(process.execPath, [tsc, '-p', config], { cwd: root, stdio: ['ignore', 2, 2] });
if (r.status !== 0) {
  console.error('sluice: compiling src/index.ts to dist/ failed (tsc -p tsconfig.build.json)');
  process.exit(r.status ?? 1);
}
console.error('sluice: built dist/ (the Node client, JavaScript and type declarations)');
