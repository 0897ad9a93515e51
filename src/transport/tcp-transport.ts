// The TCP transport: frames over node:net sockets. A listener accepts connections, runs the
// handshake on each (bounded in number and time) and emits authenticated links; connect()
// dials, handshakes and resolves with a link.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { KEY_BYTES } from '../crypto/aead.ts';
import { defaultAeadFactory, type AeadFactory } from '../crypto/aead-factory.ts';
import { isSluiceError } from '../errors.ts';
import { RejectCode, encodeReject } from '../wire/handshake-record.ts';
import { HandshakeError, HandshakeErrorCode, TransportError, TransportErrorCode } from './errors.ts';
import { endThenDestroy, performHandshake } from './handshake.ts';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, resolveLinkTuning } from './link-tuning.ts';
import { tuneMallocOnce } from './malloc-tuning.ts';
import { adoptAccepted, connectWithArena } from './socket-input.ts';
import { TcpLink } from './tcp-link.ts';
import { SEGMENTS, type ConnectOptions, type Link, type ListenOptions, type Listener, type SegmentName, type Transport, type TransportOptions } from './types.ts';

/** Handshakes a listener runs at once; more connections are refused until some finish. */
const MAX_PENDING_HANDSHAKES = 64;

function checkCommon(opts: { segment: SegmentName; segmentKey: Buffer; host: string; port: number }): void {
  if (!SEGMENTS.includes(opts.segment)) throw new RangeError(`segment must be "inference" | "training", got ${String(opts.segment)}`);
  if (!(opts.segmentKey instanceof Uint8Array) || opts.segmentKey.byteLength !== KEY_BYTES) {
    throw new RangeError(`segmentKey must be ${KEY_BYTES} bytes, got ${opts.segmentKey?.byteLength ?? typeof opts.segmentKey}`);
  }
  if (typeof opts.host !== 'string' || opts.host === '') throw new RangeError('host must be a non-empty string');
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new RangeError(`port must be an integer in [0, 65535], got ${opts.port}`);
}

/** Swallows socket errors until a link (or the handshake) owns the socket; 'close' still follows. */
function ignoreError(): void {}

class TcpListener extends EventEmitter implements Listener {
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

  setAddress(a: { host: string; port: number }): void {
    this.#address = a;
  }

  get pendingHandshakes(): Set<net.Socket> {
    return this.#pending;
  }

  async close(): Promise<void> {
    // server.close() stops accepting at once; its callback would wait for every link to end.
    this.#server.close();
    for (const s of this.#pending) s.destroy();
    this.#pending.clear();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

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

  async listen(opts: ListenOptions): Promise<Listener> {
    checkCommon(opts);
    const tuning = resolveLinkTuning(this.#opts.link, opts.maxMessageBytes);
    const segmentKey = Buffer.from(opts.segmentKey);
    // Paused so that no byte is read before the socket is adopted into arena reads.
    const server = net.createServer({ noDelay: true, pauseOnConnect: true });
    const listener = new TcpListener(server);
    server.on('connection', (accepted) => {
      accepted.on('error', ignoreError);
      const { socket, input } = adoptAccepted(accepted, tuning.receiveBufferBytes);
      socket.on('error', ignoreError);
      const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
      const pending = listener.pendingHandshakes;
      if (pending.size >= MAX_PENDING_HANDSHAKES) {
        socket.write(encodeReject(RejectCode.BUSY, 'too many handshakes in progress, retry later'));
        endThenDestroy(socket, 200, input);
        listener.emit('rejected', new HandshakeError(HandshakeErrorCode.BUSY, `${remote}: refused, ${pending.size} handshakes in progress`), remote);
        return;
      }
      pending.add(socket);
      performHandshake(socket, { role: 'acceptor', segment: opts.segment, segmentKey, timeoutMs: this.#handshakeTimeoutMs, remote }, input).then(
        (handshake) => {
          pending.delete(socket);
          if (socket.destroyed) return;
          const link = new TcpLink({ socket, input, segment: opts.segment, role: 'acceptor', handshake, tuning, aeadFactory: this.#aeadFactory });
          listener.emit('link', link);
        },
        (err: unknown) => {
          pending.delete(socket);
          listener.emit('rejected', err, remote);
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new TransportError(TransportErrorCode.UNAVAILABLE, `cannot listen on ${opts.host}:${opts.port} for the ${opts.segment} segment (${err.code ?? err.message})`, { cause: err }));
      };
      server.once('error', onError);
      server.listen(opts.port, opts.host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (err) => listener.emit('error', err));
    const addr = server.address() as net.AddressInfo;
    listener.setAddress({ host: addr.address, port: addr.port });
    return listener;
  }

  async connect(opts: ConnectOptions): Promise<Link> {
    checkCommon(opts);
    const tuning = resolveLinkTuning(this.#opts.link, opts.maxMessageBytes);
    const timeoutMs = opts.timeoutMs ?? this.#handshakeTimeoutMs;
    const started = Date.now();
    const remote = `${opts.host}:${opts.port}`;
    const { socket, input } = connectWithArena({ host: opts.host, port: opts.port }, tuning.receiveBufferBytes);
    socket.on('error', ignoreError);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new TransportError(TransportErrorCode.TIMEOUT, `connecting to ${opts.segment} peer ${remote} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve();
      });
      const onError = (err: NodeJS.ErrnoException): void => {
        clearTimeout(timer);
        reject(new TransportError(TransportErrorCode.CONNECT, `cannot connect to ${opts.segment} peer ${remote} (${err.code ?? err.message})`, { cause: err }));
      };
      socket.once('error', onError);
    });
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
