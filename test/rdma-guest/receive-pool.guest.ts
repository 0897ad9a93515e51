// Pooled receive buffers on RDMA links, inside the soft-RoCE guest: the suite TCP runs on
// loopback (test/transport/receive-pool-suite.ts). On a queue pair a training message is
// decrypted from its receive slot straight into a slab; a frame that would start one while
// every slab is lent out keeps its slot (and its credit) until a slab comes back, so the peer
// backs up instead of the receiver allocating.
import { RdmaTransport } from '../../src/transport/rdma-transport.ts';
import { runReceivePoolSuite } from '../transport/receive-pool-suite.ts';

// 10.0.2.15 is eth0, where rxe0 sits. The emulated device moves some MB/s: a shorter backlog.
runReceivePoolSuite('rdma (rxe0)', (opts) => new RdmaTransport(opts), { host: '10.0.2.15', backlogMessages: 60, timeoutMs: 300_000 });
