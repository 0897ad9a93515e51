// `sluice rdma devices` on the guest's real rxe devices (rxe0 on eth0, rxe1 on dummy0). The
// command runs in this process: a CLI subprocess would load every command under the emulator
// (minutes); test/cli/rdma-devices.test.ts runs the real CLI on the host.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rdmaDevicesCommand } from '../../src/cli/commands/rdma-devices.ts';

async function runCommand(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write;
  const err = process.stderr.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    const status = await rdmaDevicesCommand.run(args);
    return { status, stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

test('rdma devices lists rxe0 and rxe1 with port state, link layer, MTU and their GIDs', async () => {
  const r = await runCommand();
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
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

  const j = await runCommand('--json');
  assert.equal(j.status, 0, j.stderr);
  const { devices } = JSON.parse(j.stdout) as { devices: { name: string; ports: { linkLayer: string; activeMtu: number; gids: { gid: string; netdev: string }[] }[] }[] };
  assert.deepEqual(devices.map((d) => d.name).sort(), ['rxe0', 'rxe1']);
  const rxe0 = devices.find((d) => d.name === 'rxe0');
  assert.equal(rxe0?.ports[0]?.linkLayer, 'Ethernet');
  assert.ok(rxe0?.ports[0]?.gids.some((g) => g.gid === '::ffff:10.0.2.15' && g.netdev === 'eth0'));
});
