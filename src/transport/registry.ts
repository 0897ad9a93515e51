// Transports by name. 'tcp' is built in; the RDMA transport registers 'rdma' with a probe
// that says whether a device is present; 'auto' picks rdma when its probe succeeds and
// tcp otherwise, and says which it picked and why.
import { TransportError, TransportErrorCode } from './errors.ts';
import { probeRdma } from './rdma/rdma-probe.ts';
import { RdmaTransport } from './rdma-transport.ts';
import { TcpTransport } from './tcp-transport.ts';
import type { Transport, TransportKind, TransportOptions } from './types.ts';

export interface TransportAvailability {
  available: boolean;
  /** Why (device list, missing headers, ...): shown to operators. */
  detail: string;
}

export interface TransportRegistration {
  kind: TransportKind;
  create(opts?: TransportOptions): Transport;
  probe(): Promise<TransportAvailability>;
}

export type TransportName = TransportKind | 'auto';

const registry = new Map<TransportKind, TransportRegistration>();

export function registerTransport(reg: TransportRegistration): void {
  registry.set(reg.kind, reg);
}

export function registeredTransports(): TransportKind[] {
  return [...registry.keys()];
}

registerTransport({
  kind: 'tcp',
  create: (opts) => new TcpTransport(opts),
  probe: async () => ({ available: true, detail: 'TCP sockets (node:net)' }),
});

registerTransport({
  kind: 'rdma',
  create: (opts) => new RdmaTransport(opts),
  probe: async () => probeRdma(),
});

export interface ResolvedTransport {
  transport: Transport;
  kind: TransportKind;
  /** Why this transport was picked (for the start-up log). */
  reason: string;
}

/** Creates the named transport; 'auto' prefers rdma when it is registered and its probe finds a device. */
export async function createTransport(name: TransportName, opts?: TransportOptions): Promise<ResolvedTransport> {
  if (name === 'auto') {
    const rdma = registry.get('rdma');
    if (rdma !== undefined) {
      const probe = await rdma.probe();
      if (probe.available) return { transport: rdma.create(opts), kind: 'rdma', reason: `auto: rdma (${probe.detail})` };
      const tcp = registry.get('tcp') as TransportRegistration;
      return { transport: tcp.create(opts), kind: 'tcp', reason: `auto: tcp, rdma unavailable (${probe.detail})` };
    }
    const tcp = registry.get('tcp') as TransportRegistration;
    return { transport: tcp.create(opts), kind: 'tcp', reason: 'auto: tcp, this build has no rdma transport' };
  }
  const reg = registry.get(name);
  if (reg === undefined) {
    throw new TransportError(
      TransportErrorCode.UNAVAILABLE,
      `transport "${String(name)}" is not available in this build (available: ${[...registry.keys(), 'auto'].join(', ')})`,
    );
  }
  const probe = await reg.probe();
  if (!probe.available) throw new TransportError(TransportErrorCode.UNAVAILABLE, `transport "${name}" is not available: ${probe.detail}`);
  return { transport: reg.create(opts), kind: reg.kind, reason: `${name}: ${probe.detail}` };
}
