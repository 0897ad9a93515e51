// A TCP proxy that understands sluice's framing on the client-to-server direction, so tests
// can tamper with, replay, drop or cut real frames on a real connection.
import net from 'node:net';
import { HEADER_BYTES } from '../../src/wire/frame-header.ts';
import { RECORD_HEADER_BYTES } from '../../src/wire/handshake-record.ts';

/** Decides what is forwarded in place of client frame number `index` (0-based, after the handshake). */
export type FrameHook = (index: number, frame: Buffer, socket: { cut(bytes: Buffer): void }) => Buffer[];

const CLIENT_HANDSHAKE_RECORDS = 2; // HELLO, PROOF

export interface FaultProxy {
  port: number;
  /** Frames seen so far (copies), client to server. */
  frames: Buffer[];
  close(): Promise<void>;
}

export async function startFaultProxy(target: { host: string; port: number }, hook: FrameHook): Promise<FaultProxy> {
  const frames: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    sockets.add(client);
    sockets.add(upstream);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    upstream.pipe(client);
    let pending = Buffer.alloc(0);
    let records = 0;
    let index = 0;
    const cut = (bytes: Buffer): void => {
      upstream.end(bytes);
      client.destroy();
    };
    client.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        if (records < CLIENT_HANDSHAKE_RECORDS) {
          if (pending.byteLength < RECORD_HEADER_BYTES) return;
          const size = RECORD_HEADER_BYTES + pending.readUInt16BE(6);
          if (pending.byteLength < size) return;
          upstream.write(pending.subarray(0, size));
          pending = pending.subarray(size);
          records += 1;
          continue;
        }
        if (pending.byteLength < HEADER_BYTES) return;
        const size = HEADER_BYTES + pending.readUInt32BE(20) + 16;
        if (pending.byteLength < size) return;
        const frame = Buffer.from(pending.subarray(0, size));
        pending = pending.subarray(size);
        frames.push(frame);
        for (const out of hook(index++, frame, { cut })) {
          if (!upstream.destroyed) upstream.write(out);
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    frames,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
