// Every command and group of the CLI registry answers --help with exit 0 and its usage, through
// the installed bin in real child processes (a few at a time).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { commands } from '../../src/cli/registry.ts';

const root = path.resolve(import.meta.dirname, '..', '..');

function sluice(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(root, 'bin', 'sluice.mjs'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

async function inBatches<T>(items: readonly T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

test('every command answers --help (and -h) with exit 0 and its usage', { timeout: 900_000 }, async () => {
  assert.ok(commands.length >= 14);
  await inBatches(commands, 3, async (c) => {
    const r = await sluice([...c.name.split(' '), '--help']);
    assert.equal(r.status, 0, `sluice ${c.name} --help: ${r.stderr}`);
    assert.ok(r.stdout.startsWith(`usage: ${c.usage}`), `sluice ${c.name} --help prints its usage:\n${r.stdout}`);
    assert.ok(r.stdout.includes(c.summary));
  });
  const short = await sluice(['audit', 'verify', '-h']);
  assert.equal(short.status, 0, short.stderr);
});

test('every group of commands answers --help with its commands; the top level too', { timeout: 600_000 }, async () => {
  const groups = [...new Set(commands.filter((c) => c.name.includes(' ')).map((c) => c.name.split(' ')[0]!))];
  for (const g of ['audit', 'config', 'keys', 'rdma', 'transfers']) assert.ok(groups.includes(g), g);
  await inBatches(groups, 4, async (g) => {
    const r = await sluice([g, '--help']);
    assert.equal(r.status, 0, `sluice ${g} --help: ${r.stderr}`);
    for (const c of commands.filter((x) => x.name.startsWith(`${g} `))) assert.ok(r.stdout.includes(c.usage), `sluice ${g} --help lists ${c.name}`);
  });
  const top = await sluice(['--help']);
  assert.equal(top.status, 0);
  for (const c of commands) assert.ok(top.stdout.includes(c.usage));
});

test('demo --help lists its port flags with their defaults', { timeout: 200_000 }, async () => {
  const r = await sluice(['demo', '--help']);
  assert.equal(r.status, 0);
  for (const flag of ['--http-port N', '--grpc-port N', '--segment-port N', '--models-port N', '--metrics-port N', '--host H']) assert.ok(r.stdout.includes(flag), flag);
  assert.match(r.stdout, /default 8000/);
});
