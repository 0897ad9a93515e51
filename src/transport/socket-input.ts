// Reads a TCP socket into reusable memory instead of a fresh 64 KiB buffer per read.
// Node's default read path allocates every chunk and reads at most 64 KiB per system call;
// on the receiving end of a bulk link that costs more CPU than AES-GCM itself. With
// `onread`, reads go straight into one of two alternating arenas, as large as the arena has
// room for, and the frame decoder takes views of them (no copy for frames inside one read).
//
// A chunk stays valid while its consumer retains it: the consumer reports how many of the
// most recent bytes it still holds (the frame decoder: its unconsumed bytes), and an arena
// is only reused once none of those bytes lie in it.
import net from 'node:net';
import type { Readable } from 'node:stream';

export type ChunkConsumer = (chunk: Buffer) => void;

/** Where a socket's bytes go: the handshake first, then the link. */
export interface ByteInput {
  /** Sends chunks to `consumer`; `retained()` says how many of the latest bytes it still references. */
  attach(consumer: ChunkConsumer, retained?: () => number): void;
  /** Stops delivering; chunks that arrive meanwhile are kept (copied) for the next consumer. */
  detach(): void;
  /** True when reads land in reusable memory (for tests and stats). */
  readonly zeroCopy: boolean;
  /** Caps each read at `maxBytes` (at least 64 KiB); undefined lifts the cap. */
  limitReads?(maxBytes: number | undefined): void;
}

const MIN_READ = 64 * 1024;
export const DEFAULT_ARENA_BYTES = 2 * 1024 * 1024;

class Dispatch {
  #consumer: ChunkConsumer | undefined;
  #retained: () => number = () => 0;
  #pending: Buffer[] = [];

  attach(consumer: ChunkConsumer, retained: () => number = () => 0): void {
    this.#consumer = consumer;
    this.#retained = retained;
    const pending = this.#pending;
    this.#pending = [];
    for (const chunk of pending) consumer(chunk);
  }

  detach(): void {
    this.#consumer = undefined;
    this.#retained = () => 0;
  }

  retained(): number {
    return this.#retained();
  }

  deliver(chunk: Buffer, transient: boolean): void {
    if (this.#consumer !== undefined) this.#consumer(chunk);
    else this.#pending.push(transient ? Buffer.from(chunk) : chunk);
  }
}

/** Reads into two alternating arenas through `onread`. */
export class ArenaInput implements ByteInput {
  readonly zeroCopy = true;
  readonly #dispatch = new Dispatch();
  readonly #arenaBytes: number;
  #current: Buffer | undefined;
  #other: Buffer | undefined;
  #written = 0;
  #maxRead = Infinity;

  constructor(arenaBytes = DEFAULT_ARENA_BYTES) {
    if (!Number.isInteger(arenaBytes) || arenaBytes < 2 * MIN_READ) throw new RangeError(`arenaBytes must be an integer of at least ${2 * MIN_READ}`);
    this.#arenaBytes = arenaBytes;
  }

  /** The `onread` option for net.connect() / new net.Socket(). */
  get onread(): net.OnReadOpts {
    return { buffer: () => this.#nextRegion(), callback: (n: number, buf: Uint8Array) => this.#onRead(n, buf) };
  }

  attach(consumer: ChunkConsumer, retained?: () => number): void {
    this.#dispatch.attach(consumer, retained);
  }

  detach(): void {
    this.#dispatch.detach();
  }

  limitReads(maxBytes: number | undefined): void {
    this.#maxRead = maxBytes === undefined ? Infinity : Math.max(MIN_READ, maxBytes);
  }

  #nextRegion(): Buffer {
    if (this.#current === undefined) this.#current = Buffer.allocUnsafe(this.#arenaBytes);
    if (this.#arenaBytes - this.#written >= MIN_READ) return this.#current.subarray(this.#written, this.#written + Math.min(this.#arenaBytes - this.#written, this.#maxRead));
    // Switch arenas. The other one may be reused only if every retained byte lies in this one.
    const reusable = this.#dispatch.retained() <= this.#written ? this.#other : undefined;
    this.#other = this.#current;
    this.#current = reusable ?? Buffer.allocUnsafe(this.#arenaBytes);
    this.#written = 0;
    return this.#maxRead < this.#arenaBytes ? this.#current.subarray(0, this.#maxRead) : this.#current;
  }

  #onRead(n: number, buf: Uint8Array): boolean {
    this.#written += n;
    this.#dispatch.deliver(Buffer.from(buf.buffer, buf.byteOffset, n), true);
    return true;
  }
}

/**
 * Node's own read path ('data' events, a fresh buffer per read): the fallback, and what any
 * other stream (the RDMA side channel) uses. Listens only while attached; while detached a
 * paused stream keeps its bytes itself.
 */
export class DataEventInput implements ByteInput {
  readonly zeroCopy = false;
  readonly #dispatch = new Dispatch();
  readonly #stream: Readable;
  readonly #onData = (chunk: Buffer): void => this.#dispatch.deliver(chunk, false);

  constructor(stream: Readable) {
    this.#stream = stream;
  }

  attach(consumer: ChunkConsumer, retained?: () => number): void {
    this.#dispatch.attach(consumer, retained);
    if (!this.#stream.listeners('data').includes(this.#onData)) this.#stream.on('data', this.#onData);
  }

  detach(): void {
    this.#stream.off('data', this.#onData);
    this.#dispatch.detach();
  }
}

/** Dials with reads going into arenas. */
export function connectWithArena(opts: { host: string; port: number }, arenaBytes?: number): { socket: net.Socket; input: ByteInput } {
  const input = new ArenaInput(arenaBytes);
  const socket = net.connect({ host: opts.host, port: opts.port, noDelay: true, onread: input.onread });
  return { socket, input };
}

/**
 * Takes over a socket accepted with `pauseOnConnect`, so its reads go into arenas too.
 * Node offers `onread` only to sockets it creates for connect(), so the accepted connection's
 * handle is wrapped in a new Socket (the `handle` option Node's own cluster code uses). Where
 * that is not possible the accepted socket is used as it is, with Node's read path.
 */
export function adoptAccepted(accepted: net.Socket, arenaBytes?: number): { socket: net.Socket; input: ByteInput } {
  const handle = (accepted as unknown as { _handle?: unknown })._handle;
  if (handle !== null && typeof handle === 'object' && typeof (handle as { readStart?: unknown }).readStart === 'function') {
    const input = new ArenaInput(arenaBytes);
    const options = { handle, readable: true, writable: true, onread: input.onread } as net.SocketConstructorOpts;
    const socket = new net.Socket(options);
    socket.resume();
    return { socket, input };
  }
  const input = new DataEventInput(accepted);
  accepted.resume();
  return { socket: accepted, input };
}
