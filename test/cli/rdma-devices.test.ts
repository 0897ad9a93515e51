// `sluice rdma devices` as a real subprocess. On a host without RDMA (these machines: the
// kernel has no InfiniBand support) it must say why and exit 1; the listing itself is checked
// on real rxe devices in the soft-RoCE guest (test/rdma-guest/rdma-transport.guest.ts).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { listRdmaDevices } from '../../src/transport/rdma/devices.ts';

const root = path.resolve(import.meta.dirname, '..', '..');

function sluice(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
}

test('rdma devices: with no device, one clear line with the reason and a hint, exit 1', { skip: listRdmaDevices().devices.length > 0 && 'this machine has RDMA devices' }, () => {
  const r = sluice('rdma', 'devices');
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] as string, /^sluice rdma devices: no RDMA devices: .+; use transport: tcp \(or auto\), or create a soft-RoCE device: modprobe rdma_rxe && rdma link add rxe0 type rxe netdev eth0$/);

  const j = sluice('rdma', 'devices', '--json');
  assert.equal(j.status, 1);
  const parsed = JSON.parse(j.stdout) as { devices: unknown[]; reason: string };
  assert.deepEqual(parsed.devices, []);
  assert.equal(typeof parsed.reason, 'string');
  assert.ok(lines[0]?.includes(parsed.reason), 'the text and JSON forms give the same reason');
});

test('rdma devices: stray arguments are a usage error (exit 2)', () => {
  const r = sluice('rdma', 'devices', 'rxe0');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^sluice rdma devices: unexpected arguments: rxe0\nusage: sluice rdma devices \[--json\]\n$/);
});
