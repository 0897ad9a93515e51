// The production TransportResolver: the transport registry, logging which transport it picked.
import { createTransport } from '../transport/registry.ts';
import type { TransportResolver } from './sluice-node.ts';

export const defaultTransports: TransportResolver = async (choice, logger, opts) => {
  const r = await createTransport(choice, opts);
  logger.info({ transport: r.kind, reason: r.reason }, 'segment transport');
  return r.transport;
};
