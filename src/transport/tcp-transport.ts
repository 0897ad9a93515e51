// The TCP transport: frames over node:net sockets. A listener accepts connections, runs the
// handshake on each (bounded in number and time) and emits authenticated links; connect()
// dials, handshakes and resolves with a link.
import net from 'node:net';
import { defaultAeadFactory, type AeadFactory } from '../crypto/aead-factory.ts';
import { isSluiceError } from '../errors.ts';
import { checkEndpointOptions, whenConnected } from './dial.ts';
import { TransportError, TransportErrorCode } from './errors.ts';
import { performHandshake } from './handshake.ts';
import { HandshakeListener } from './handshake-listener.ts';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, resolveLinkTuning } from './link-tuning.ts';
import { tuneMallocOnce } from './malloc-tuning.ts';
import { adoptAccepted, connectWithArena } from './socket-input.ts';
import { applySocketClass } from './socket-class.ts';
import { TcpLink } from './tcp-link.ts';
import type { ConnectOptions, Link, ListenOptions, Listener, Transport, TransportOptions } from './types.ts';

/** Swallows socket errors until a link (or the handshake) owns the socket; 'close' still follows. */
function ignoreError(): void {}

export class TcpTransport implements Transport {
  readonly kind = 'tcp' as const;
  readonly #aeadFactory: AeadFactory;
  readonly #opts: TransportOptions;
  readonly #handshakeTimeoutMs: number;

  constructor(opts: TransportOptions = {}) {
    this.#opts = opts;
    this.#aeadFactory = opts.aeadFactory ?? defaultAeadFactory();
    this.#handshakeTimeoutMs = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    resolveLinkTuning(opts.link, undefined); // fail fast on bad tuning
    tuneMallocOnce();
  }

  /** Marks a link socket with the segment's class (segments.<name>.dscp), before the handshake's first byte. */
  #mark(socket: net.Socket): void {
    const cls = this.#opts.socketClass;
    if (cls === undefined) return;
    try {
      applySocketClass(socket, cls);
    } catch {
      // Marking is advisory (a fabric's queues honour it, the link does not depend on it); a
      // socket that closed meanwhile or a kernel that refuses the option keeps the link working.
    }
  }

  async listen(opts: ListenOptions): Promise<Listener> {
    checkEndpointOptions(opts);
    const tuning = resolveLinkTuning(this.#opts.link, opts.maxMessageBytes);
    const segmentKey = Buffer.from(opts.segmentKey);
    // Paused so that no byte is read before the socket is adopted into arena reads.
    const server = net.createServer({ noDelay: true, pauseOnConnect: true });
    const listener = new HandshakeListener(server);
    server.on('connection', (accepted) => {
      accepted.on('error', ignoreError);
      const { socket, input } = adoptAccepted(accepted, tuning.receiveBufferBytes);
      socket.on('error', ignoreError);
      this.#mark(socket);
      const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
      if (!listener.admit(socket, remote, input)) return;
      const linked = performHandshake(socket, { role: 'acceptor', segment: opts.segment, segmentKey, timeoutMs: opts.handshakeTimeoutMs ?? this.#handshakeTimeoutMs, remote }, input).then((handshake) =>
        socket.destroyed ? undefined : new TcpLink({ socket, input, segment: opts.segment, role: 'acceptor', handshake, tuning, aeadFactory: this.#aeadFactory }),
      );
      listener.follow(socket, remote, linked);
    });
    await listener.bind(opts.host, opts.port, opts.segment, opts.maxConnections);
    return listener;
  }

  async connect(opts: ConnectOptions): Promise<Link> {
    checkEndpointOptions(opts);
    const tuning = resolveLinkTuning(this.#opts.link, opts.maxMessageBytes);
    const timeoutMs = opts.timeoutMs ?? this.#handshakeTimeoutMs;
    const started = Date.now();
    const remote = `${opts.host}:${opts.port}`;
    const { socket, input } = connectWithArena({ host: opts.host, port: opts.port }, tuning.receiveBufferBytes);
    socket.on('error', ignoreError);
    await whenConnected(socket, opts.segment, remote, timeoutMs);
    this.#mark(socket);
    try {
      const handshake = await performHandshake(
        socket,
        {
          role: 'initiator',
          segment: opts.segment,
          segmentKey: opts.segmentKey,
          timeoutMs: Math.max(1, timeoutMs - (Date.now() - started)),
          remote,
        },
        input,
      );
      return new TcpLink({ socket, input, segment: opts.segment, role: 'initiator', handshake, tuning, aeadFactory: this.#aeadFactory });
    } catch (err) {
      // performHandshake already ended the socket (after a REJECT where one was due).
      throw isSluiceError(err) ? err : new TransportError(TransportErrorCode.CONNECT, `handshake with ${remote} failed: ${String(err)}`, { cause: err });
    }
  }
}
