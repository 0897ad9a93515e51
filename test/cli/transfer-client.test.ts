// Which address the `sluice transfers` commands dial: --address, else the training listener of
// --config / SLUICE_CONFIG, else 127.0.0.1:8003. Never listeners.grpc: TensorTransfer is served
// on listeners.training alone.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { DEFAULT_TRAINING_ADDRESS, transferAddress } from '../../src/cli/transfer-client.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dir = tempDir('transfer-client-');
const key = 'ab'.repeat(32);

function config(name: string, yaml: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, yaml);
  return file;
}

test('the default is the training listener, 127.0.0.1:8003', () => {
  assert.equal(DEFAULT_TRAINING_ADDRESS, '127.0.0.1:8003');
  const saved = process.env.SLUICE_CONFIG;
  delete process.env.SLUICE_CONFIG;
  try {
    assert.equal(transferAddress({}), '127.0.0.1:8003');
  } finally {
    if (saved !== undefined) process.env.SLUICE_CONFIG = saved;
  }
});

test('a config gives its listeners.training (a wildcard host dials loopback); listeners.grpc is never used', () => {
  const training = config('t.yaml', `listeners: { grpc: { host: 127.0.0.1, port: 9101 }, training: { host: 0.0.0.0, port: 9103 } }\nsegments: { training: { transport: tcp, key: "${key}" } }\n`);
  assert.equal(transferAddress({ config: training }), '127.0.0.1:9103');
  const v6 = config('v6.yaml', `listeners: { training: { host: "::1", port: 9203 } }\nsegments: { training: { transport: tcp, key: "${key}" } }\n`);
  assert.equal(transferAddress({ config: v6 }), '[::1]:9203');
  // Only listeners.grpc: the training listener is then at its default, not on the gRPC port.
  const grpcOnly = config('g.yaml', `listeners: { grpc: { host: 127.0.0.1, port: 9101 } }\nsegments: { training: { transport: tcp, key: "${key}" } }\n`);
  assert.equal(transferAddress({ config: grpcOnly }), '127.0.0.1:8003');
  assert.equal(transferAddress({ config: training, address: '127.0.0.1:7003' }), '127.0.0.1:7003', '--address wins');
});
