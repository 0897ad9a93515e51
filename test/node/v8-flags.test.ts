// Every way sluice starts passes the same V8 flags (src/node/v8-flags.ts): the child-process
// launcher imports them; the bin's shebang, package.json's start scripts and the Dockerfile's
// ENTRYPOINT spell them out; the bin starts through its shebang (env -S).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../../scripts/sluice-child.ts';
import { SLUICE_V8_FLAGS } from '../../src/node/v8-flags.ts';

const read = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');

test('the bin, the npm start scripts and the Dockerfile carry the flags', () => {
  assert.ok(SLUICE_V8_FLAGS.length > 0);
  const shebang = read('bin/sluice.mjs').split('\n')[0]!;
  assert.equal(shebang, `#!/usr/bin/env -S node ${SLUICE_V8_FLAGS.join(' ')}`);
  const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
  for (const name of ['start', 'sluice']) assert.ok(scripts[name]!.startsWith(`node ${SLUICE_V8_FLAGS.join(' ')} `), `npm ${name}: ${scripts[name]}`);
  const entrypoint = /^ENTRYPOINT (.*)$/m.exec(read('Dockerfile'))?.[1];
  assert.deepEqual(JSON.parse(entrypoint!), ['node', ...SLUICE_V8_FLAGS, '/app/bin/sluice.mjs']);
});

test('the bin starts through its shebang, and this Node accepts the flags', () => {
  const r = spawnSync(path.join(ROOT, 'bin/sluice.mjs'), ['--help'], { encoding: 'utf8', env: { ...process.env, SLUICE_CONFIG: '' }, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /usage: sluice/);
  // A flag this Node's V8 does not know would stop every sluice process at start-up.
  const v8 = spawnSync(process.execPath, [...SLUICE_V8_FLAGS, '-e', '0'], { encoding: 'utf8' });
  assert.equal(v8.status, 0, v8.stderr);
});
