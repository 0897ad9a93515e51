// RDMA devices for operators and for the transport: listing (ports, GIDs, link layer, MTU)
// and opening one by name, netdev, GID or IPv4 address, with an error that lists what exists
// and says what to do when nothing matches.
import { fromNative, RdmaError, RdmaErrorCode } from './rdma-errors.ts';
import { loadVerbs, type NativeDevice, type NativeDeviceInfo } from './verbs-addon.ts';

export type RdmaDeviceInfo = NativeDeviceInfo;

export interface DeviceListing {
  devices: RdmaDeviceInfo[];
  /** Why the list is empty (no verbs in this build, no kernel support, no device). */
  reason?: string;
}

export const NO_DEVICE_HINT =
  'use transport: tcp (or auto), or create a soft-RoCE device: modprobe rdma_rxe && rdma link add rxe0 type rxe netdev eth0';

export function listRdmaDevices(): DeviceListing {
  const v = loadVerbs();
  if (!('binding' in v)) return { devices: [], reason: v.reason };
  try {
    const devices = v.binding.listDevices();
    return devices.length > 0 ? { devices } : { devices, reason: 'no RDMA devices found' };
  } catch (err) {
    const e = fromNative(err);
    const reason = /ENOSYS/.test(e.message) ? `the kernel has no RDMA support (${e.message})` : e.message;
    return { devices: [], reason };
  }
}

/** One line per device, for errors and logs: "rxe0 port 1 ACTIVE Ethernet eth0 ::ffff:10.0.2.15". */
export function describeDevices(devices: readonly RdmaDeviceInfo[]): string {
  if (devices.length === 0) return 'none';
  return devices
    .map((d) => {
      const ports = d.ports.map((p) => {
        const netdevs = [...new Set(p.gids.map((g) => g.netdev).filter((n) => n !== ''))];
        const v4 = p.gids.find((g) => g.gid.startsWith('::ffff:'))?.gid;
        return `port ${p.port} ${p.state} ${p.linkLayer}${netdevs.length > 0 ? ` ${netdevs.join(',')}` : ''}${v4 !== undefined ? ` ${v4}` : ''}`;
      });
      return `${d.name} (${ports.join('; ') || 'no ports'})`;
    })
    .join(', ');
}

export interface OpenedDeviceInfo {
  name: string;
  port: number;
  gidIndex: number;
  gid: string;
  lid: number;
  ethernet: boolean;
  activeMtu: number;
}

/** An open device (verbs context and protection domain); connections keep it alive natively. */
export class RdmaDevice {
  readonly native: NativeDevice;
  readonly info: OpenedDeviceInfo;
  readonly spec: string;

  private constructor(native: NativeDevice, spec: string) {
    this.native = native;
    this.spec = spec;
    this.info = native.info();
  }

  /**
   * Opens the device `spec` names (device, netdev, GID or IPv4 address; '' = the first with an
   * active port). Throws RdmaError NO_DEVICE listing the devices there are, with a hint.
   */
  static open(spec = ''): RdmaDevice {
    const v = loadVerbs();
    if (!('binding' in v)) throw new RdmaError(RdmaErrorCode.UNAVAILABLE, `RDMA is not available: ${v.reason}; ${NO_DEVICE_HINT}`);
    try {
      return new RdmaDevice(new v.binding.Device(spec), spec);
    } catch (err) {
      const e = fromNative(err);
      if (e.code !== RdmaErrorCode.NO_DEVICE) throw e;
      const listing = listRdmaDevices();
      const have = listing.devices.length > 0 ? `devices: ${describeDevices(listing.devices)}` : (listing.reason ?? 'no devices');
      const what = spec === '' ? 'no usable RDMA device' : `no RDMA device matches "${spec}"`;
      throw new RdmaError(RdmaErrorCode.NO_DEVICE, `${what} (${have}); ${NO_DEVICE_HINT}`, { cause: err });
    }
  }

  close(): void {
    this.native.close();
  }
}
