// A receiving training node in its own process, for tests that kill and restart the receiver.
// Usage: receiver-child.ts <port> <spoolDir> <keyHex>; prints {"port":N} once listening.
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import { TrainingNode } from '../../src/training/training-node.ts';

const [portArg, spoolDir, keyHex] = process.argv.slice(2) as [string, string, string];
const key = Buffer.from(keyHex, 'hex');
const transport = new TcpTransport();
const node = new TrainingNode({ nodeName: 'b', transport, segmentKey: key, peers: [], spoolDir });
await node.start();
const listener = await transport.listen({ segment: 'training', host: '127.0.0.1', port: Number(portArg), segmentKey: key });
listener.on('link', (l) => node.attachLink(l));
process.stdout.write(`${JSON.stringify({ port: listener.address.port })}\n`);
setInterval(() => undefined, 60_000); // until killed
