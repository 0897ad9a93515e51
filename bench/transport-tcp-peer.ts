// Receiving end of bench/transport-tcp.ts, in its own process (as a peer node would be).
// Usage: transport-tcp-peer.ts <plain|null|aes> <keyHex> <bytesPerRun>
// Prints {"port": N} once listening. After each run's bytes it answers with its cumulative
// CPU time in microseconds (a JSON line on the plain socket; a message on the link).
import net from 'node:net';
import { TcpTransport } from '../src/transport/tcp-transport.ts';
import type { InboundMessage, Link } from '../src/transport/types.ts';
import { benchLinkTuning } from './link-tuning-env.ts';
import { benchOnlyNullAeadFactory } from './null-aead.ts';

const [mode = 'aes', keyHex = '', bytesArg = '0'] = process.argv.slice(2);
const perRun = Number(bytesArg);

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

if (mode === 'plain') {
  const server = net.createServer({ noDelay: true }, (socket) => {
    let got = 0;
    socket.on('data', (chunk: Buffer) => {
      got += chunk.byteLength;
      if (got >= perRun) {
        got -= perRun;
        socket.write(`${JSON.stringify({ cpu: cpuMicros() })}\n`);
      }
    });
    socket.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ port: (server.address() as net.AddressInfo).port })}\n`);
  });
} else {
  const transport = new TcpTransport({ ...(mode === 'null' ? { aeadFactory: benchOnlyNullAeadFactory } : {}), link: benchLinkTuning() });
  const listener = await transport.listen({ segment: 'training', host: '127.0.0.1', port: 0, segmentKey: Buffer.from(keyHex, 'hex') });
  listener.on('link', (link: Link) => {
    let got = 0;
    link.on('message', (m: InboundMessage) => {
      got += m.body.byteLength;
      if (got >= perRun) {
        got -= perRun;
        link.send({ cls: 'control', kind: 1, streamId: 1, body: Buffer.from(JSON.stringify({ cpu: cpuMicros() })) });
      }
    });
  });
  process.stdout.write(`${JSON.stringify({ port: listener.address.port })}\n`);
}
process.on('SIGTERM', () => process.exit(0));
