// Resolves the transport named by a segment's config to an implementation of the Transport
// contract (src/transport/types.ts).
import { SluiceError } from '../errors.ts';
import type { TransportResolver } from './sluice-node.ts';

export const defaultTransports: TransportResolver = async (choice) => {
  throw new SluiceError('SLUICE_ERR_TRANSPORT', `no ${choice} transport is built into this sluice yet`);
};
