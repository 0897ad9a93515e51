// Receiving end of bench/transport-rdma-guest.ts, in its own process (as a peer node would be).
// Usage: transport-rdma-peer.ts <rdma|tcp> <null|aes> <host> <keyHex> <messages> <messageBytes>
// Prints {"port": N} once listening; answers each run with one acknowledgement.
import { RdmaTransport } from '../src/transport/rdma-transport.ts';
import { TcpTransport } from '../src/transport/tcp-transport.ts';
import type { InboundMessage, Link, TransportOptions } from '../src/transport/types.ts';
import { benchOnlyNullAeadFactory } from './null-aead.ts';

const [kind = 'rdma', mode = 'aes', host = '127.0.0.1', keyHex = '', messagesArg = '0', sizeArg = '0'] = process.argv.slice(2);
const total = Number(messagesArg) * Number(sizeArg);
const slots = Number(process.env.SLUICE_BENCH_RDMA_SLOTS ?? 16);
const opts: TransportOptions = mode === 'null' ? { aeadFactory: benchOnlyNullAeadFactory } : {};
const transport = kind === 'rdma' ? new RdmaTransport({ ...opts, rdma: { sendSlots: slots, recvWindow: slots } }) : new TcpTransport(opts);
const listener = await transport.listen({ segment: 'training', host, port: 0, segmentKey: Buffer.from(keyHex, 'hex') });
listener.on('link', (link: Link) => {
  let got = 0;
  link.on('message', (m: InboundMessage) => {
    got += m.body.byteLength;
    if (got >= total) {
      got -= total;
      link.send({ cls: 'control', kind: 1, streamId: 1, body: Buffer.from([1]) });
    }
  });
});
process.stdout.write(`${JSON.stringify({ port: listener.address.port })}\n`);
process.on('SIGTERM', () => process.exit(0));
