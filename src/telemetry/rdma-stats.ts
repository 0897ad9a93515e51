// RDMA counters per device, kept as plain numbers by the verbs channel as completions arrive
// (a property increment each; the completions themselves come from native memory through typed
// arrays, so counting costs no native call). Process-wide, because devices are: the metrics
// registry reads every device's block once per scrape.
import type { RdmaSnapshot } from './stat-sources.ts';

export class RdmaDeviceStats implements RdmaSnapshot {
  /** Work completions by kind: send, recv, credit. */
  readonly completions: Record<string, number> = { send: 0, recv: 0, credit: 0 };
  /** Failed completions by verbs status name (IBV_WC_RETRY_EXC_ERR, ...) or "protocol". */
  readonly completionErrors: Record<string, number> = {};
  /** Bytes of memory registered right now (send and receive pools of open queue pairs). */
  registeredBytes = 0;
  /** Queue pairs open right now. */
  queuePairs = 0;

  constructor(readonly device: string) {}

  error(status: string): void {
    this.completionErrors[status] = (this.completionErrors[status] ?? 0) + 1;
  }
}

const devices = new Map<string, RdmaDeviceStats>();

/** The counter block of one device (created on first use). */
export function rdmaDeviceStats(device: string): RdmaDeviceStats {
  let s = devices.get(device);
  if (s === undefined) {
    s = new RdmaDeviceStats(device);
    devices.set(device, s);
  }
  return s;
}

/** Every device that has had a queue pair in this process. */
export function allRdmaDeviceStats(): IterableIterator<RdmaDeviceStats> {
  return devices.values();
}
