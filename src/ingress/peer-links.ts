// Keeps one link open to each egress peer of the inference segment: connects at start,
// reconnects with capped exponential backoff when a link drops, and hands out live links
// round-robin. A route whose peers are all down fails at once (UNAVAILABLE), never queues.
import { EventEmitter } from 'node:events';
import type { Logger } from '../telemetry/logger.ts';
import type { Link, LinkCloseInfo, Transport } from '../transport/types.ts';
import { noLiveLinkError } from './segment-call.ts';

export interface PeerAddress {
  name: string;
  host: string;
  port: number;
}

export interface PeerLinksOptions {
  transport: Transport;
  peers: readonly PeerAddress[];
  segmentKey: Buffer;
  maxMessageBytes: number;
  logger: Logger;
  connectTimeoutMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

interface PeerState {
  peer: PeerAddress;
  link: Link | undefined;
  backoffMs: number;
  timer: NodeJS.Timeout | undefined;
  lastError: string;
  /** At least one connection attempt has finished (up or failed). */
  tried: boolean;
}

/** Events: 'link' (name, Link) each time a link to a peer comes up; 'connect-error' (name, err) when an attempt fails. */
export class PeerLinks extends EventEmitter {
  private readonly opts: PeerLinksOptions;
  private readonly peers = new Map<string, PeerState>();
  private closed = false;
  private rr = 0;

  constructor(opts: PeerLinksOptions) {
    super();
    this.opts = opts;
    for (const peer of opts.peers) {
      this.peers.set(peer.name, { peer, link: undefined, backoffMs: opts.minBackoffMs ?? 100, timer: undefined, lastError: 'not connected yet', tried: false });
    }
  }

  start(): void {
    for (const s of this.peers.values()) void this.connect(s);
  }

  /** Resolves once every peer has been tried once (up or failed), or after `timeoutMs`. */
  async waitForFirstAttempts(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if ([...this.peers.values()].every((s) => s.tried)) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  }

  /** The live link to one peer, if it is up. */
  linkOf(name: string): Link | undefined {
    const link = this.peers.get(name)?.link;
    return link !== undefined && !link.closed ? link : undefined;
  }

  /** Peer names, in config order. */
  get names(): string[] {
    return [...this.peers.keys()];
  }

  isUp(name: string): boolean {
    return this.peers.get(name)?.link !== undefined;
  }

  /** A live link to one of `names`, round-robin; UNAVAILABLE when none is up. */
  pick(names: readonly string[]): { name: string; link: Link } {
    const n = names.length;
    for (let i = 0; i < n; i++) {
      const name = names[(this.rr + i) % n]!;
      const link = this.peers.get(name)?.link;
      if (link !== undefined && !link.closed) {
        this.rr = (this.rr + i + 1) % 0x40000000;
        return { name, link };
      }
    }
    throw noLiveLinkError(names, (nm) => this.peers.get(nm)?.lastError);
  }

  private async connect(s: PeerState): Promise<void> {
    if (this.closed) return;
    const { peer } = s;
    try {
      const link = await this.opts.transport.connect({
        segment: 'inference',
        host: peer.host,
        port: peer.port,
        segmentKey: this.opts.segmentKey,
        maxMessageBytes: this.opts.maxMessageBytes,
        timeoutMs: this.opts.connectTimeoutMs ?? 3000,
      });
      if (this.closed) {
        await link.close('shutting down');
        return;
      }
      s.link = link;
      s.tried = true;
      s.backoffMs = this.opts.minBackoffMs ?? 100;
      this.opts.logger.info({ peer: peer.name, address: `${peer.host}:${peer.port}`, link: link.id, transport: link.transport }, 'inference link up');
      link.once('close', (info: LinkCloseInfo) => {
        s.link = undefined;
        s.lastError = `link closed (${info.by}: ${info.reason})`;
        if (this.closed) return;
        this.opts.logger.warn({ peer: peer.name, by: info.by, reason: info.reason }, 'inference link down; reconnecting');
        this.schedule(s);
      });
      this.emit('link', peer.name, link);
    } catch (err) {
      s.lastError = `connect to ${peer.host}:${peer.port} failed: ${(err as Error).message}`;
      s.tried = true;
      this.opts.logger.debug({ peer: peer.name, err: (err as Error).message }, 'inference link connect failed');
      this.emit('connect-error', peer.name, err);
      this.schedule(s);
    }
  }

  private schedule(s: PeerState): void {
    if (this.closed || s.timer !== undefined) return;
    const delay = s.backoffMs;
    s.backoffMs = Math.min(s.backoffMs * 2, this.opts.maxBackoffMs ?? 5000);
    s.timer = setTimeout(() => {
      s.timer = undefined;
      void this.connect(s);
    }, delay);
  }

  async close(): Promise<void> {
    this.closed = true;
    const closing: Promise<void>[] = [];
    for (const s of this.peers.values()) {
      if (s.timer !== undefined) clearTimeout(s.timer);
      s.timer = undefined;
      if (s.link !== undefined) closing.push(s.link.close('shutting down'));
      s.link = undefined;
    }
    await Promise.allSettled(closing);
  }
}
