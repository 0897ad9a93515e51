// The shared transport conformance suite, over rdma_rxe in the soft-RoCE guest.
import { RdmaTransport } from '../../src/transport/rdma-transport.ts';
import { runTransportConformance } from '../transport/conformance.ts';

const MiB = 1024 * 1024;
// 10.0.2.15 is eth0, where rxe0 sits; the emulated guest moves about 10-20 MB/s, so the bulk
// transfer is smaller than on TCP (SLUICE_RDMA_BULK_MIB overrides).
runTransportConformance('rdma (rxe0)', (opts) => new RdmaTransport(opts), {
  registryName: 'rdma',
  host: '10.0.2.15',
  bulkBytes: Number(process.env.SLUICE_RDMA_BULK_MIB ?? 64) * MiB,
});
