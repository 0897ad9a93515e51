// Every JS-facing function of the native addon checks its arguments itself (native/binding.cc):
// a wrong count, type, byte length or range throws a TypeError or RangeError with a code
// (SLUICE_ERR_CRYPTO_ARG for the AEAD, SLUICE_ERR_NATIVE_ARG otherwise) and touches no memory.
// Before, these were assert()s, compiled out in the Release build: a short `out` to open() was
// a heap overflow. The calls run in a child process (test/fixtures/binding-args-child.ts), so a
// crash or abort fails this test at the case that caused it instead of killing the runner.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

const root = path.resolve(import.meta.dirname, '..', '..');
const T = 'TypeError';
const R = 'RangeError';

/** Case -> the error class it must throw (the child's names). */
const EXPECTED: Record<string, typeof T | typeof R> = {
  'AeadContext()': T,
  'AeadContext(string)': T,
  'AeadContext(Uint16Array)': T,
  'AeadContext(DataView)': T,
  'AeadContext(31 bytes)': R,
  'AeadContext(0 bytes)': R,
  'AeadContext(33 bytes)': R,
  'seal(3 args)': T,
  'seal(nonce 11)': R,
  'seal(nonce 0)': R,
  'seal(out short)': R,
  'seal(out long)': R,
  'seal(out empty)': R,
  'seal(plaintext string)': T,
  'seal(aad null)': T,
  'seal(out Float64Array)': T,
  'sealv(parts string)': T,
  'sealv(parts array-like)': T,
  'sealv(part number)': T,
  'sealv(out short)': R,
  'sealv(nonce 13)': R,
  'open()': T,
  'open(sealed 15)': R,
  'open(sealed 0)': R,
  'open(out long)': R,
  'open(out short)': R,
  'open(sealed Float32Array)': T,
  'open(nonce 64 KiB)': R,
  'tuneMalloc()': T,
  'tuneMalloc(string)': T,
  'tuneMalloc(-1)': R,
  'tuneMalloc(NaN)': R,
  'tuneMalloc(1.5)': R,
  'tuneMalloc(Infinity)': R,
  'setThreadName()': T,
  'setThreadName(number)': T,
  'lowerThreadPriority(string)': T,
  'lowerThreadPriority()': T,
  'setSocketClass(string fd)': T,
  'setSocketClass(-2^31-1)': R,
  'setSocketClass(2^31)': R,
  'setSocketClass(1.5)': R,
  'setSocketClass(dscp object)': T,
  'setSocketClass(2 args)': T,
  'getSocketClass(object)': T,
  'getSocketClass(2^40)': R,
};

/** With the RDMA part built (the child runs them when the addon has `verbs`). */
const VERBS: Record<string, typeof T | typeof R> = {
  'verbs.Device(number)': T,
  'verbs.Device()': T,
  'verbs.Connection()': T,
  'verbs.Connection(plain object)': T,
  'verbs.Connection(AeadContext)': T,
};

interface Outcome {
  name: string;
  threw?: boolean;
  class?: string;
  code?: string;
  message?: string;
  ok?: boolean;
}

test('wrong arguments to the native addon throw typed errors with a code, and never crash the process', () => {
  const child = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'test', 'fixtures', 'binding-args-child.ts')], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
  });
  const outcomes = child.stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Outcome);
  const last = outcomes.at(-1)?.name ?? '(none)';
  assert.equal(child.signal, null, `the child died of ${child.signal} after case ${last}\n${child.stderr}`);
  assert.equal(child.status, 0, `the child exited ${child.status} after case ${last}\n${child.stderr}`);
  const byName = new Map(outcomes.map((o) => [o.name, o]));
  const expected = { ...EXPECTED, ...(byName.has('verbs.Device()') ? VERBS : {}) };
  for (const [name, cls] of Object.entries(expected)) {
    const o = byName.get(name);
    assert.ok(o, `case ${name} ran`);
    assert.equal(o.threw, true, `${name} threw`);
    assert.equal(o.class, cls, `${name}: ${o.class} ${o.message}`);
    const crypto = /^(AeadContext|seal|sealv|open)\(/.test(name);
    assert.equal(o.code, crypto ? 'SLUICE_ERR_CRYPTO_ARG' : 'SLUICE_ERR_NATIVE_ARG', `${name}: code`);
    assert.ok(typeof o.message === 'string' && o.message.length > 10, `${name}: a message (${o.message})`);
  }
  assert.equal(byName.size - 1, Object.keys(expected).length, 'every case is listed here');
  assert.equal(byName.get('roundtrip')?.ok, true, 'the context still seals and opens after the refusals');
  // The messages name the argument and both lengths.
  assert.match(byName.get('open(out short)')!.message!, /out \(sealed - tag\) must be 65520 bytes, got 1/);
  assert.match(byName.get('AeadContext(31 bytes)')!.message!, /key must be 32 bytes, got 31/);
  assert.match(byName.get('seal(out Float64Array)')!.message!, /out must be a Uint8Array/);
});
