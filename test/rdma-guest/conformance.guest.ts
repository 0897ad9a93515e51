// The shared transport conformance suite, over rdma_rxe in the soft-RoCE guest.
import { RdmaTransport } from '../../src/transport/rdma-transport.ts';
import { runTransportConformance } from '../transport/conformance.ts';

const MiB = 1024 * 1024;
// 10.0.2.15 is eth0, where rxe0 sits. The emulated guest moves only some MB/s, so the bulk
// transfer is smaller than on TCP (rdma-transport.guest.ts moves a 64 MiB tensor on its own;
// SLUICE_RDMA_BULK_MIB overrides) and the suite gets a longer deadline.
runTransportConformance('rdma (rxe0)', (opts) => new RdmaTransport(opts), {
  registryName: 'rdma',
  host: '10.0.2.15',
  bulkBytes: Number(process.env.SLUICE_RDMA_BULK_MIB ?? 16) * MiB,
  timeoutMs: 900_000,
});
