// `sluice rdma devices` on the guest's real rxe devices (rxe0 on eth0, rxe1 on dummy0).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

const root = path.resolve(import.meta.dirname, '..', '..');

function sluice(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
}

test('rdma devices lists rxe0 and rxe1 with port state, link layer, MTU and their GIDs', () => {
  const r = sluice('rdma', 'devices');
  assert.equal(r.status, 0, r.stderr);
  const text = r.stdout;
  for (const [dev, netdev, ip] of [
    ['rxe0', 'eth0', '10.0.2.15'],
    ['rxe1', 'dummy0', '10.0.3.15'],
  ] as const) {
    const block = new RegExp(`^${dev}  transport InfiniBand  node GUID [0-9a-f]{4}(:[0-9a-f]{4}){3}\\n  port 1  ACTIVE  Ethernet  mtu (256|512|1024|2048|4096) \\(max 4096\\)\\n((    gid .*\\n)+)`, 'm');
    const m = block.exec(text);
    assert.ok(m !== null, `no block for ${dev} in:\n${text}`);
    const gids = m[3] as string;
    assert.match(gids, new RegExp(`gid +\\d+  ::ffff:${ip.replace(/\./g, '\\.')}  RoCE v2  ${netdev}\\n`), gids);
  }

  const j = sluice('rdma', 'devices', '--json');
  assert.equal(j.status, 0, j.stderr);
  const { devices } = JSON.parse(j.stdout) as { devices: { name: string; ports: { linkLayer: string; activeMtu: number; gids: { gid: string; netdev: string }[] }[] }[] };
  assert.deepEqual(devices.map((d) => d.name).sort(), ['rxe0', 'rxe1']);
  const rxe0 = devices.find((d) => d.name === 'rxe0');
  assert.equal(rxe0?.ports[0]?.linkLayer, 'Ethernet');
  assert.ok(rxe0?.ports[0]?.gids.some((g) => g.gid === '::ffff:10.0.2.15' && g.netdev === 'eth0'));
});
