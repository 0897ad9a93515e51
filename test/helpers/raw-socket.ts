// Raw loopback sockets for listener-hardening tests: connect, send some bytes (or none), and
// measure when the server closes the connection.
import net from 'node:net';
import tls from 'node:tls';

export interface RawConnection {
  socket: net.Socket;
  /** Everything the server sent so far. */
  received(): Buffer;
  /** Milliseconds from connect to the server closing the socket; rejects after `withinMs`. */
  closed(withinMs: number): Promise<number>;
}

export function rawConnect(port: number, host = '127.0.0.1', firstBytes?: Buffer | string): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host });
    const chunks: Buffer[] = [];
    let started = 0;
    let closedAt: number | undefined;
    const waiters: (() => void)[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => undefined);
    socket.on('end', () => socket.end());
    socket.once('close', () => {
      closedAt = Date.now();
      for (const w of waiters) w();
    });
    socket.once('connect', () => {
      started = Date.now();
      if (firstBytes !== undefined) socket.write(firstBytes);
      resolve({
        socket,
        received: () => Buffer.concat(chunks),
        closed: (withinMs) =>
          new Promise<number>((res, rej) => {
            if (closedAt !== undefined) {
              res(closedAt - started);
              return;
            }
            const timer = setTimeout(() => {
              socket.destroy();
              rej(new Error(`the server kept the connection open for ${withinMs} ms`));
            }, withinMs);
            waiters.push(() => {
              clearTimeout(timer);
              res((closedAt as number) - started);
            });
          }),
      });
    });
    socket.once('error', reject);
  });
}

/** The first bytes of a TLS 1.2/1.3 ClientHello record header and part of its body: half a handshake. */
export const HALF_CLIENT_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);

/** The HTTP/2 client connection preface, cut in half. */
export const HALF_H2_PREFACE = 'PRI * HTTP/2.0\r\n';
export const H2_PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
/** An empty SETTINGS frame. */
export const H2_SETTINGS = Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
/** A DATA frame on stream 0: a connection error (RFC 9113 section 6.1). */
export const H2_DATA_ON_STREAM_0 = Buffer.from([0, 0, 4, 0x0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);

/** Frame types in a server's byte stream (frames after the preface). */
export function h2FrameTypes(bytes: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i + 9 <= bytes.length; ) {
    const len = bytes.readUIntBE(i, 3);
    out.push(bytes[i + 3] as number);
    i += 9 + len;
  }
  return out;
}

/** A TLS client that completes the handshake (test CA trusted) and then says nothing. */
export function tlsConnect(port: number, ca: string | Buffer, alpn: string[], opts: { cert?: string | Buffer; key?: string | Buffer } = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', ca, servername: 'localhost', ALPNProtocols: alpn, ...opts }, () => resolve(s));
    // Flowing, so the server's FIN is read and 'close' follows.
    s.resume();
    s.once('error', reject);
  });
}
