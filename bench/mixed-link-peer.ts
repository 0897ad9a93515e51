// Back end of bench/mixed-link-guest.ts, in its own process (as the egress node would be): one
// listener per segment. Inference messages are answered with the same bytes (an identity model
// with no model server in between); every training message is acknowledged with a small
// control message, which the front counts as delivered bulk.
// Usage: mixed-link-peer.ts <rdma|tcp> <host> <inferenceKeyHex> <trainingKeyHex> [device]
// Prints {"inference": port, "training": port} once listening.
import { RdmaTransport } from '../src/transport/rdma-transport.ts';
import { TcpTransport } from '../src/transport/tcp-transport.ts';
import type { InboundMessage, Link, Transport } from '../src/transport/types.ts';
import { BULK_ACK_KIND, linkTuningFor } from './mixed-link-tuning.ts';

const [kind = 'tcp', host = '127.0.0.1', infKey = '', trainKey = '', device] = process.argv.slice(2);
const transport: Transport = kind === 'rdma' ? new RdmaTransport({ link: linkTuningFor(undefined) }) : new TcpTransport({ link: linkTuningFor(undefined) });
const dev = device !== undefined ? { device } : {};
const inference = await transport.listen({ segment: 'inference', host, port: 0, segmentKey: Buffer.from(infKey, 'hex'), ...dev });
const training = await transport.listen({ segment: 'training', host, port: 0, segmentKey: Buffer.from(trainKey, 'hex'), ...dev });
inference.on('link', (link: Link) => {
  link.on('message', (m: InboundMessage) => {
    if (m.cls === 'inference') link.send({ cls: 'inference', kind: m.kind, streamId: m.streamId, body: m.body });
  });
});
training.on('link', (link: Link) => {
  link.on('message', (m: InboundMessage) => {
    if (m.cls === 'training') link.send({ cls: 'control', kind: BULK_ACK_KIND, streamId: m.streamId, body: Buffer.from([1]) });
  });
});
process.stdout.write(`${JSON.stringify({ inference: inference.address.port, training: training.address.port })}\n`);
process.on('SIGTERM', () => process.exit(0));
