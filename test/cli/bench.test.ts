// `sluice bench` through the installed bin, in a real child process: it lists the suites of
// the registry `npm run bench` uses, and refuses unknown names and options with usage errors.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { suites } from '../../bench/main.ts';

const root = path.resolve(import.meta.dirname, '..', '..');

function sluice(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'sluice.mjs'), ...args], { cwd: root, encoding: 'utf8', timeout: 180_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function listedNames(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('  ') && !l.trimStart().startsWith('-'))
    .map((l) => l.trim().split(/\s+/)[0] as string);
}

test('sluice bench --list prints every suite of bench/main.ts with its summary', () => {
  const r = sluice('bench', '--list');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(listedNames(r.stdout), Object.keys(suites));
  for (const [name, s] of Object.entries(suites)) assert.match(r.stdout, new RegExp(`${name}\\s+${s.summary.replace(/[.*+?^${}()|[\]\\`]/g, '\\$&')}`));
});

test('sluice bench --help shows the usage and the suites', () => {
  const r = sluice('bench', '--help');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^usage: sluice bench \[NAME\.\.\.\]/);
  assert.deepEqual(listedNames(r.stdout.slice(r.stdout.indexOf('suites:'))), Object.keys(suites));
});

test('sluice bench refuses an unknown suite or option before running anything', () => {
  const unknown = sluice('bench', 'crypto', 'no-such-suite');
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown suite\(s\) no-such-suite; available: crypto, /);
  assert.doesNotMatch(unknown.stdout, /== crypto/, 'nothing ran');
  const option = sluice('bench', '--rounds=3');
  assert.equal(option.status, 2);
  assert.match(option.stderr, /usage: sluice bench/);
});

test('sluice --help lists the bench command', () => {
  const r = sluice('--help');
  assert.equal(r.status, 0);
  assert.match(r.stdout, /sluice bench \[NAME\.\.\.\]/);
});

test('npm run bench -- --list lists the suites and runs none of them', () => {
  const r = spawnSync('npm', ['run', '--silent', 'bench', '--', '--list'], { cwd: root, encoding: 'utf8', timeout: 180_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(listedNames(r.stdout), Object.keys(suites));
  assert.doesNotMatch(r.stdout, /^== /m, 'no suite ran');
});

test('every suite honours --quick: the registry passes the options on, and the suite reads --quick', async () => {
  const { readFileSync } = await import('node:fs');
  const registry = readFileSync(path.join(root, 'bench', 'main.ts'), 'utf8');
  for (const name of Object.keys(suites)) {
    const entry = new RegExp(`'?${name}'?: \\{[^}]*?run: async \\((\\w+)\\) => \\(await import\\('\\./([\\w-]+)\\.ts'\\)\\)\\.run\\(\\1\\)`).exec(registry);
    assert.ok(entry, `suite ${name} is run with the options`);
    const source = readFileSync(path.join(root, 'bench', `${entry[2]}.ts`), 'utf8');
    assert.match(source, /args\.includes\('--quick'\)/, `bench/${entry[2]}.ts reads --quick`);
  }
});
