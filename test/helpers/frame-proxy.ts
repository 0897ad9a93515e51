// A fault-injecting TCP proxy for back-end links: it parses the initiator→acceptor byte stream
// (handshake records, then frames) and lets a test rewrite, duplicate or drop whole frames.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { HEADER_BYTES, frameBytes } from '../../src/wire/frame-header.ts';
import { HANDSHAKE_MAGIC, RECORD_HEADER_BYTES } from '../../src/wire/handshake-record.ts';

/** Returns the frames to forward in place of `frame` (a copy may be edited freely). */
export type FrameEdit = (frame: Buffer, index: number) => Buffer[];

export interface FrameProxy {
  port: number;
  close(): Promise<void>;
}

export async function startFrameProxy(target: { host: string; port: number }, edit: FrameEdit): Promise<FrameProxy> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(target);
    sockets.add(client).add(upstream);
    let pending = Buffer.alloc(0);
    let inFrames = false;
    let index = 0;
    client.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        if (!inFrames && pending.length >= 4 && pending.readUInt32BE(0) !== HANDSHAKE_MAGIC) inFrames = true;
        if (!inFrames) {
          if (pending.length < RECORD_HEADER_BYTES) return;
          const size = RECORD_HEADER_BYTES + pending.readUInt16BE(6);
          if (pending.length < size) return;
          upstream.write(pending.subarray(0, size));
          pending = pending.subarray(size);
          continue;
        }
        if (pending.length < HEADER_BYTES) return;
        const size = frameBytes(pending.readUInt32BE(20));
        if (pending.length < size) return;
        const frame = Buffer.from(pending.subarray(0, size));
        pending = pending.subarray(size);
        for (const out of edit(frame, index++)) upstream.write(out);
      }
    });
    upstream.on('data', (d: Buffer) => client.write(d));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
