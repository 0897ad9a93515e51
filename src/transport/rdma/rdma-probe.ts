// Whether the RDMA transport can run here: a device with an active port. The detail names the
// devices (for "auto: rdma (...)" in the start-up log) or says why there are none, with a hint.
import { describeDevices, listRdmaDevices, NO_DEVICE_HINT } from './devices.ts';

export interface RdmaAvailability {
  available: boolean;
  detail: string;
}

export function probeRdma(): RdmaAvailability {
  const { devices, reason } = listRdmaDevices();
  const active = devices.filter((d) => d.ports.some((p) => p.state === 'ACTIVE'));
  if (active.length > 0) return { available: true, detail: `devices: ${describeDevices(active)}` };
  const why = devices.length > 0 ? `no RDMA device has an active port (devices: ${describeDevices(devices)})` : `no RDMA device (${reason ?? 'none found'})`;
  return { available: false, detail: `${why}; ${NO_DEVICE_HINT}` };
}
