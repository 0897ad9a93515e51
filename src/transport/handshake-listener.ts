// The listening side both transports share: a node:net server whose connections run the
// handshake before they become links. It bounds the handshakes in progress (refusing more with
// a BUSY reject record), binds with a typed error, and closes without waiting for the links.
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { RejectCode, encodeReject } from '../wire/handshake-record.ts';
import { HandshakeError, HandshakeErrorCode, TransportError, TransportErrorCode } from './errors.ts';
import { endThenDestroy } from './handshake.ts';
import type { ByteInput } from './socket-input.ts';
import type { Link, Listener, SegmentName } from './types.ts';

/** Handshakes a listener runs at once; more connections are refused until some finish. */
const MAX_PENDING_HANDSHAKES = 64;

export class HandshakeListener extends EventEmitter implements Listener {
  readonly #server: net.Server;
  readonly #pending = new Set<net.Socket>();
  #address: { host: string; port: number } = { host: '', port: 0 };

  constructor(server: net.Server) {
    super();
    this.#server = server;
  }

  get address(): { host: string; port: number } {
    return this.#address;
  }

  /**
   * Takes a new connection into the handshakes in progress; false (after telling the peer to
   * retry later, and emitting 'rejected') when too many are running already.
   */
  admit(socket: net.Socket, remote: string, input?: ByteInput): boolean {
    if (this.#pending.size >= MAX_PENDING_HANDSHAKES) {
      socket.write(encodeReject(RejectCode.BUSY, 'too many handshakes in progress, retry later'));
      endThenDestroy(socket, 200, input);
      this.emit('rejected', new HandshakeError(HandshakeErrorCode.BUSY, `${remote}: refused, ${this.#pending.size} handshakes in progress`), remote);
      return false;
    }
    this.#pending.add(socket);
    return true;
  }

  /** Emits 'link' or 'rejected' once the connection's handshake (and set-up) has ended. */
  follow(socket: net.Socket, remote: string, outcome: Promise<Link | undefined>): void {
    outcome.then(
      (link) => {
        this.#pending.delete(socket);
        if (link !== undefined) this.emit('link', link);
      },
      (err: unknown) => {
        this.#pending.delete(socket);
        this.emit('rejected', err, remote);
      },
    );
  }

  /**
   * Binds host:port; a failure to bind is a TransportError UNAVAILABLE naming the segment.
   * Past `maxConnections` Node closes new connections on accept; each is reported as 'rejected' (BUSY).
   */
  async bind(host: string, port: number, segment: SegmentName, maxConnections?: number): Promise<void> {
    const server = this.#server;
    if (maxConnections !== undefined) {
      server.maxConnections = maxConnections;
      server.on('drop', (info?: { remoteAddress?: string; remotePort?: number }) => {
        const remote = `${info?.remoteAddress ?? '?'}:${info?.remotePort ?? '?'}`;
        this.emit('rejected', new HandshakeError(HandshakeErrorCode.BUSY, `${remote}: refused, ${maxConnections} connections open`), remote);
      });
    }
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new TransportError(TransportErrorCode.UNAVAILABLE, `cannot listen on ${host}:${port} for the ${segment} segment (${err.code ?? err.message})`, { cause: err }));
      };
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (err) => this.emit('error', err));
    const addr = server.address() as net.AddressInfo;
    this.#address = { host: addr.address, port: addr.port };
  }

  async close(): Promise<void> {
    // server.close() stops accepting at once; its callback would wait for every link to end.
    this.#server.close();
    for (const s of this.#pending) s.destroy();
    this.#pending.clear();
    await new Promise((resolve) => setImmediate(resolve));
  }
}
