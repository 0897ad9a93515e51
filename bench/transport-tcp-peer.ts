// Receiving end of bench/transport-tcp.ts, in its own process (as a peer node would be).
// Usage: transport-tcp-peer.ts <plain|null|aes> <keyHex> <messages> <messageBytes>
// Prints {"port": N} once listening; answers each run with one acknowledgement.
import net from 'node:net';
import { TcpTransport } from '../src/transport/tcp-transport.ts';
import type { InboundMessage, Link } from '../src/transport/types.ts';
import { benchOnlyNullAeadFactory } from './null-aead.ts';

const [mode = 'aes', keyHex = '', messagesArg = '0', sizeArg = '0'] = process.argv.slice(2);
const total = Number(messagesArg) * Number(sizeArg);

if (mode === 'plain') {
  const server = net.createServer({ noDelay: true }, (socket) => {
    let got = 0;
    socket.on('data', (chunk: Buffer) => {
      got += chunk.byteLength;
      if (got >= total) {
        got -= total;
        socket.write(Buffer.from([1]));
      }
    });
    socket.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ port: (server.address() as net.AddressInfo).port })}\n`);
  });
} else {
  const transport = new TcpTransport(mode === 'null' ? { aeadFactory: benchOnlyNullAeadFactory } : {});
  const listener = await transport.listen({ segment: 'training', host: '127.0.0.1', port: 0, segmentKey: Buffer.from(keyHex, 'hex') });
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
}
process.on('SIGTERM', () => process.exit(0));
