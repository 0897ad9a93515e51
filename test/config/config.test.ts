import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';

test('config errors name the path and the expected values', () => {
  assert.throws(
    () => parseConfigText('segments:\n  training:\n    transport: udp\n', 'x.yaml'),
    (err: Error) => err.message.includes('segments.training.transport: expected "tcp" | "rdma" | "auto"'),
  );
});

test('an empty document is the default config', () => {
  const cfg = parseConfigText('', 'empty.yaml');
  assert.equal(cfg.limits.maxRequestBytes, 64 * 1024 * 1024);
});

test('malformed YAML is a config error, not a crash', () => {
  assert.throws(() => parseConfigText('a: [1, 2', 'bad.yaml'), /bad\.yaml: invalid YAML/);
});
