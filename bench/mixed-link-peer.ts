// Back end of bench/mixed-link-guest.ts, in its own process (as the egress node would be): one
// listener per segment. Inference messages are answered with the same bytes (an identity model
// with no model server in between); every training message is acknowledged with a small
// control message, which the front counts as delivered bulk.
// Usage: mixed-link-peer.ts <rdma|tcp> <host> <inferenceKeyHex> <trainingKeyHex> [device]
// Prints {"inference": port, "training": port} once listening.
import { RdmaTransport } from '../src/transport/rdma-transport.ts';
import { TcpTransport } from '../src/transport/tcp-transport.ts';
import type { InboundMessage, Link, SegmentName, Transport } from '../src/transport/types.ts';
import { BULK_ACK_KIND, linkTuningFor, newGovernor } from './mixed-link-tuning.ts';

const [kind = 'tcp', host = '127.0.0.1', infKey = '', trainKey = '', device] = process.argv.slice(2);
// One governor for the process, told of every inference message (as the egress node does), so
// its training link takes bulk in short turns while inference passes.
const governor = newGovernor();
const transportFor = (segment: SegmentName): Transport =>
  kind === 'rdma' ? new RdmaTransport({ link: linkTuningFor(governor, segment) }) : new TcpTransport({ link: linkTuningFor(governor, segment) });
const dev = device !== undefined ? { device } : {};
const inference = await transportFor('inference').listen({ segment: 'inference', host, port: 0, segmentKey: Buffer.from(infKey, 'hex'), ...dev });
const training = await transportFor('training').listen({ segment: 'training', host, port: 0, segmentKey: Buffer.from(trainKey, 'hex'), ...dev });
inference.on('link', (link: Link) => {
  link.on('message', (m: InboundMessage) => {
    governor.noteInference(performance.now());
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
