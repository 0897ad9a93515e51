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

test('segments.<name>.dscp is a DSCP code point; listeners.training defaults to port 8003', () => {
  const key = 'ab'.repeat(32);
  const c = parseConfigText(`listeners: { training: {} }\nsegments: { training: { key: "${key}", dscp: 10 }, inference: { key: "${key}" } }`, 'ok.yaml');
  assert.equal(c.segments.training?.dscp, 10);
  assert.equal(c.segments.inference?.dscp, undefined, 'unset: the segment default applies (inference 34, training 8)');
  assert.deepEqual(c.listeners.training, { host: '127.0.0.1', port: 8003, handshakeTimeoutMs: 10_000, idleTimeoutMs: 300_000 });
  assert.throws(() => parseConfigText(`segments: { training: { key: "${key}", dscp: 64 } }`, 'bad.yaml'), /segments\.training\.dscp/);
  assert.throws(() => parseConfigText(`segments: { inference: { key: "${key}", dscp: 1.5 } }`, 'bad.yaml'), /segments\.inference\.dscp/);
});
