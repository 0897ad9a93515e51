// A byte-level TCP proxy on loopback for fault tests: per connection (numbered from 0) it can cut
// the client-to-server direction after N bytes, or flip one byte at offset N (the link's AEAD
// then rejects that frame and the link fails). Everything else is forwarded untouched.
import net from 'node:net';

export interface ConnectionFault {
  /** Close both sockets once this many client-to-server bytes went through. */
  cutAfter?: number;
  /** XOR 0xff into the client-to-server byte at this offset. */
  flipAt?: number;
}

export interface TcpFaultProxy {
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Client-to-server bytes forwarded, per connection. */
  readonly forwarded: number[];
  /** Cuts every open connection now. */
  cutAll(): void;
  close(): Promise<void>;
}

export async function startTcpFaultProxy(target: { host: string; port: number }, faultFor: (connection: number) => ConnectionFault = () => ({})): Promise<TcpFaultProxy> {
  const sockets = new Set<net.Socket>();
  const forwarded: number[] = [];
  let connections = 0;
  const server = net.createServer((client) => {
    const index = connections++;
    const fault = faultFor(index);
    forwarded[index] = 0;
    const upstream = net.connect(target);
    sockets.add(client);
    sockets.add(upstream);
    const kill = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', kill);
    upstream.on('error', kill);
    client.on('close', kill);
    upstream.on('close', kill);
    upstream.pipe(client);
    client.on('data', (chunk: Buffer) => {
      const start = forwarded[index] as number;
      let out = chunk;
      if (fault.flipAt !== undefined && fault.flipAt >= start && fault.flipAt < start + chunk.length) {
        out = Buffer.from(chunk);
        out[fault.flipAt - start] = (out[fault.flipAt - start] as number) ^ 0xff;
      }
      if (fault.cutAfter !== undefined && start + out.length >= fault.cutAfter) {
        const keep = Math.max(0, fault.cutAfter - start);
        forwarded[index] = start + keep;
        upstream.write(out.subarray(0, keep), kill);
        return;
      }
      forwarded[index] = start + out.length;
      if (!upstream.write(out)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return connections;
    },
    forwarded,
    cutAll() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
