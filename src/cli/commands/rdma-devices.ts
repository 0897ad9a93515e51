// `sluice rdma devices`: what an operator needs to pick a device for a segment (device, port
// state, link layer, MTU, GIDs with the netdev each sits on). With no device it says why and
// exits 1, as ibv_devinfo does, so scripts can tell "none here" from a listing.
import { parseArgs } from 'node:util';
import { listRdmaDevices, NO_DEVICE_HINT, type RdmaDeviceInfo } from '../../transport/rdma/devices.ts';
import { UsageError, type CliCommand } from '../command.ts';

export function formatDevices(devices: readonly RdmaDeviceInfo[]): string {
  const lines: string[] = [];
  for (const d of devices) {
    lines.push(`${d.name}  transport ${d.transport}  node GUID ${d.nodeGuid}`);
    if (d.ports.length === 0) lines.push('  (no ports)');
    for (const p of d.ports) {
      const lid = p.linkLayer === 'InfiniBand' ? `  lid ${p.lid}` : '';
      lines.push(`  port ${p.port}  ${p.state}  ${p.linkLayer}  mtu ${p.activeMtu} (max ${p.maxMtu})${lid}`);
      if (p.gids.length === 0) lines.push('    (no GIDs)');
      for (const g of p.gids) lines.push(`    gid ${String(g.index).padStart(2)}  ${g.gid}  ${g.type}${g.netdev !== '' ? `  ${g.netdev}` : ''}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export const rdmaDevicesCommand: CliCommand = {
  name: 'rdma devices',
  summary: 'list RDMA devices: ports, state, link layer, MTU, GIDs and their netdevs (exit 1 when there are none)',
  usage: 'sluice rdma devices [--json]',
  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' } } });
    if (positionals.length > 0) throw new UsageError(`unexpected arguments: ${positionals.join(' ')}`);
    const { devices, reason } = listRdmaDevices();
    if (values.json === true) {
      process.stdout.write(`${JSON.stringify(devices.length > 0 ? { devices } : { devices, reason })}\n`);
    } else if (devices.length > 0) {
      process.stdout.write(formatDevices(devices));
    }
    if (devices.length === 0) {
      process.stderr.write(`sluice rdma devices: no RDMA devices: ${reason ?? 'none found'}; ${NO_DEVICE_HINT}\n`);
      return 1;
    }
    return 0;
  },
};
