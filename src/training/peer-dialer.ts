// Keeps one link to one training peer: dials on demand, shares the live link among transfers,
// and redials with capped exponential backoff after the link breaks. Attempts are bounded by the
// caller's deadline, so an unreachable peer fails a transfer cleanly instead of hanging it.
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Link, LinkCloseInfo, Transport } from '../transport/types.ts';
import { TransferError } from './errors.ts';

export interface PeerAddress {
  name: string;
  host: string;
  port: number;
}

export interface PeerDialerOptions {
  transport: Transport;
  segmentKey: Buffer;
  maxMessageBytes?: number;
  device?: string;
  /** Called for each new link so the node can route its messages. */
  onLink: (link: Link, peer: PeerAddress) => void;
  connectTimeoutMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** Events: 'up' (Link), 'down' (LinkCloseInfo). */
export class PeerDialer extends EventEmitter {
  private link: Link | undefined;
  private dialing: Promise<Link> | undefined;
  private closed = false;
  private failures = 0;

  constructor(
    readonly peer: PeerAddress,
    private readonly opts: PeerDialerOptions,
  ) {
    super();
  }

  /** The live link, if any (no dialing). */
  get current(): Link | undefined {
    return this.link !== undefined && !this.link.closed ? this.link : undefined;
  }

  /**
   * Resolves with a live link, dialing (and redialing with backoff) until `deadline`
   * (a Date.now() value); rejects with UNAVAILABLE past it, naming the last error.
   */
  async get(deadline: number, signal?: AbortSignal): Promise<Link> {
    let lastError: unknown;
    for (;;) {
      if (this.closed) throw new TransferError('UNAVAILABLE', 'training node is shutting down');
      signal?.throwIfAborted();
      const live = this.current;
      if (live !== undefined) return live;
      try {
        this.dialing ??= this.dial().finally(() => {
          this.dialing = undefined;
        });
        return await this.dialing;
      } catch (err) {
        lastError = err;
      }
      const backoff = Math.min(this.opts.maxBackoffMs ?? 2000, (this.opts.minBackoffMs ?? 50) * 2 ** Math.min(this.failures, 10));
      if (Date.now() + backoff >= deadline) {
        const why = lastError instanceof Error ? lastError.message : String(lastError);
        throw new TransferError('UNAVAILABLE', `training peer "${this.peer.name}" at ${this.peer.host}:${this.peer.port} is unreachable: ${why}`, { cause: lastError });
      }
      await sleep(backoff, undefined, signal === undefined ? undefined : { signal });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const l = this.link;
    this.link = undefined;
    if (l !== undefined && !l.closed) await l.close('training node shutting down');
  }

  private async dial(): Promise<Link> {
    try {
      const link = await this.opts.transport.connect({
        segment: 'training',
        host: this.peer.host,
        port: this.peer.port,
        segmentKey: this.opts.segmentKey,
        timeoutMs: this.opts.connectTimeoutMs ?? 5000,
        ...(this.opts.maxMessageBytes !== undefined ? { maxMessageBytes: this.opts.maxMessageBytes } : {}),
        ...(this.opts.device !== undefined ? { device: this.opts.device } : {}),
      });
      if (this.closed) {
        await link.close('training node shutting down');
        throw new TransferError('UNAVAILABLE', 'training node is shutting down');
      }
      this.failures = 0;
      this.link = link;
      link.once('close', (info: LinkCloseInfo) => {
        if (this.link === link) this.link = undefined;
        this.emit('down', info);
      });
      this.opts.onLink(link, this.peer);
      this.emit('up', link);
      return link;
    } catch (err) {
      this.failures++;
      throw err;
    }
  }
}
