// A peer in its own process, for the conformance test that kills it mid-message.
// Usage: peer-child.ts <transport> <host> <port> <segment> <keyHex> <bigMessageBytes>
// Connects, sends a small hello on stream 1, then one big message on stream 2, then waits.
import { createTransport, type TransportName } from '../../src/transport/registry.ts';
import type { SegmentName } from '../../src/transport/types.ts';

const [name, host, port, segment, keyHex, bigArg] = process.argv.slice(2) as [string, string, string, SegmentName, string, string];
const { transport } = await createTransport(name as TransportName);
const big = Number(bigArg);
const link = await transport.connect({ segment, host, port: Number(port), segmentKey: Buffer.from(keyHex, 'hex'), maxMessageBytes: big });
const cls = segment;
link.send({ cls, kind: 1, streamId: 1, body: Buffer.from('hello') });
link.send({ cls, kind: 1, streamId: 2, body: Buffer.alloc(big, 0x5a) });
setInterval(() => undefined, 60_000); // stay alive until killed
