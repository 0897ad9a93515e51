// An in-process Transport for testing the layers above links (training engine) without sockets.
// Messages are delivered asynchronously in order; links can be cut from the test. Real-socket
// tests of the same engine use the TCP transport.
import { EventEmitter } from 'node:events';
import type { ConnectOptions, InboundMessage, Link, LinkStats, ListenOptions, Listener, OutboundMessage, SegmentName, Transport } from '../../src/transport/types.ts';

let seq = 0;

class MemoryLink extends EventEmitter implements Link {
  readonly id = `mem-${++seq}`;
  readonly transport = 'tcp' as const;
  closed = false;
  other!: MemoryLink;
  private readonly counters: LinkStats = { framesSent: 0, framesReceived: 0, bytesSent: 0, bytesReceived: 0, messagesSent: 0, messagesReceived: 0, queuedBytes: 0, rejectedFrames: 0 };
  /** Test hook: sees every outbound message; return false to drop it. */
  tap: ((m: OutboundMessage) => boolean) | undefined;

  constructor(
    readonly segment: SegmentName,
    readonly remoteAddress: string,
  ) {
    super();
  }

  send(msg: OutboundMessage): boolean {
    if (this.closed) return false;
    if (this.tap && !this.tap(msg)) return true;
    const body = Buffer.isBuffer(msg.body) ? Buffer.from(msg.body) : Buffer.concat(msg.body as Buffer[]);
    this.counters.messagesSent++;
    this.counters.bytesSent += body.length;
    const inbound: InboundMessage = { cls: msg.cls, kind: msg.kind, streamId: msg.streamId, tenant: msg.tenant ?? 0, body };
    setImmediate(() => {
      if (this.closed || this.other.closed) return;
      this.other.counters.messagesReceived++;
      this.other.counters.bytesReceived += body.length;
      this.other.emit('message', inbound);
    });
    return true;
  }

  async close(reason?: string): Promise<void> {
    this.cut(reason);
  }

  cut(reason?: string): void {
    for (const l of [this, this.other]) {
      if (l.closed) continue;
      l.closed = true;
      setImmediate(() => l.emit('close', reason ? new Error(reason) : undefined));
    }
  }

  stats(): LinkStats {
    return { ...this.counters };
  }
}

class MemoryListener extends EventEmitter implements Listener {
  constructor(
    readonly address: { host: string; port: number },
    private readonly onClose: () => void,
  ) {
    super();
  }
  async close(): Promise<void> {
    this.onClose();
  }
}

/** One shared "network": listeners by host:port. */
export class MemoryTransport implements Transport {
  readonly kind = 'tcp' as const;
  private readonly listeners = new Map<string, { listener: MemoryListener; opts: ListenOptions }>();
  readonly links: MemoryLink[] = [];
  private nextPort = 40000;

  async listen(opts: ListenOptions): Promise<Listener> {
    const port = opts.port === 0 ? this.nextPort++ : opts.port;
    const key = `${opts.host}:${port}`;
    if (this.listeners.has(key)) throw new Error(`EADDRINUSE ${key}`);
    const listener = new MemoryListener({ host: opts.host, port }, () => this.listeners.delete(key));
    this.listeners.set(key, { listener, opts });
    return listener;
  }

  async connect(opts: ConnectOptions): Promise<Link> {
    const entry = this.listeners.get(`${opts.host}:${opts.port}`);
    if (entry === undefined) throw Object.assign(new Error(`connect ECONNREFUSED ${opts.host}:${opts.port}`), { code: 'ECONNREFUSED' });
    if (entry.opts.segment !== opts.segment || !entry.opts.segmentKey.equals(opts.segmentKey)) throw new Error('link handshake failed: segment or key mismatch');
    const a = new MemoryLink(opts.segment, `${opts.host}:${opts.port}`);
    const b = new MemoryLink(opts.segment, 'memory-client');
    a.other = b;
    b.other = a;
    this.links.push(a, b);
    setImmediate(() => entry.listener.emit('link', b));
    return a;
  }

  /** Cuts every live link (a network blip). */
  cutAll(): void {
    for (const l of this.links) if (!l.closed) l.cut('cut by test');
  }
}
