// One node's side of training transfers: starts outbound transfers to configured training peers
// (one shared link per peer), receives inbound ones from any authenticated training link, keeps
// the registry behind GetStatus/List/Cancel, the subscribers behind Subscribe, and the spool
// behind Pull. Transfers are refused up front, with a clear error, when the peer is unknown or
// is an inference-segment peer: a training frame never travels on the inference segment.
import { createHash } from 'node:crypto';
import { sendQuietly } from '../transport/send-quietly.ts';
import type { InboundMessage, Link, Transport } from '../transport/types.ts';
import { PeerProtocolError, TransferError } from './errors.ts';
import { InboundTransfer } from './inbound-transfer.ts';
import { checkTensorMeta, checkTransferId, newTransferId } from './names.ts';
import { OutboundTransfer } from './outbound-transfer.ts';
import { PeerDialer, type PeerAddress } from './peer-dialer.ts';
import { TrainingKind, decodePeerMessage, encodeError, encodeOpened, encodeResult, isTrainingKind, type PeerMessage } from './peer-messages.ts';
import type { ReceiveEvent, Subscriber } from './receive-events.ts';
import { AtRestError } from '../security/at-rest/at-rest-error.ts';
import type { SpoolKeys } from './sealed-spool-file.ts';
import { Spool, type SpoolRecord, type TensorFile } from './spool.ts';
import type { Sink, TensorMeta } from './tensor-meta.ts';
import { SpoolSink, StreamSink } from './tensor-sink.ts';
import type { TransferEventLog, TransferSummary } from './transfer-state.ts';
import type { TrainingStats } from '../telemetry/training-stats.ts';

export interface TrainingPeerConfig {
  name: string;
  segment: 'inference' | 'training';
  host: string;
  port: number;
}

export interface TrainingLimits {
  /** Unacknowledged bytes held per outbound transfer. */
  windowBytes: number;
  /** Largest chunk a producer may hand over. */
  maxChunkBytes: number;
  maxTensorBytes: number;
  /** Keep redialing a lost peer this long before failing a transfer. */
  resumeTimeoutMs: number;
  /** Fail a transfer when the peer has not answered for this long while data is outstanding. */
  stallTimeoutMs: number;
  /** Forget a finished transfer's status after this long. */
  finishedRetentionMs: number;
  /** Delete spool partials untouched for this long (their sender gave up). */
  partialRetentionMs: number;
  /** A detached outbound transfer (its Push stream ended early) waits this long for a resume. */
  producerIdleMs: number;
  maxTransfers: number;
  maxCorruptChunks: number;
}

export const defaultTrainingLimits: TrainingLimits = {
  windowBytes: 8 * 1024 * 1024,
  maxChunkBytes: 1024 * 1024,
  maxTensorBytes: 1024 * 1024 * 1024,
  resumeTimeoutMs: 60_000,
  stallTimeoutMs: 60_000,
  finishedRetentionMs: 10 * 60_000,
  partialRetentionMs: 60 * 60_000,
  producerIdleMs: 10 * 60_000,
  maxTransfers: 64,
  maxCorruptChunks: 16,
};

export interface TrainingNodeOptions {
  nodeName: string;
  transport: Transport;
  segmentKey: Buffer;
  peers: readonly TrainingPeerConfig[];
  spoolDir: string;
  limits?: Partial<TrainingLimits>;
  maxMessageBytes?: number;
  device?: string;
  /** Security-relevant refusals (cross-segment attempts, protocol violations) for the audit log. */
  onAudit?: (event: { action: string; detail: string }) => void;
  /** Every training-segment link this node accepts for transfers (metrics, security guards). */
  onLink?: (link: Link, peer?: string) => void;
  /** Transfer counters for the metrics registry. */
  stats?: TrainingStats;
  /** Resume, completion, failure and quarantine of every transfer, both directions (the node logs them). */
  onTransferEvent?: TransferEventLog;
  /**
   * Looks at each spooled tensor once it is verified (threat detection's poisoning checks);
   * `withhold` quarantines it until `sluice training release`. Absent: every tensor is delivered.
   */
  inspectSpooled?: (t: { id: string; from: string; tensor: TensorMeta; file: string; open: () => Promise<TensorFile> }) => Promise<{ withhold: boolean; reason?: string }>;
  /**
   * security.atRest: spooled tensors are sealed under the data key of the tenant that sent
   * them (the tenant id of the transfer's frames, named by `tenantName`).
   */
  atRest?: { keys: SpoolKeys; tenantName: (id: number) => string };
  /** Fault injection (tests, drills): see OutboundTransferOptions.corruptChunk. */
  corruptChunk?: (id: string, offset: number) => boolean;
}

export interface PushRequest {
  peer: string;
  tensor: TensorMeta;
  total: number;
  transferId?: string;
  resume?: boolean;
  sink?: Sink;
  tenant?: number;
}

export interface PushHandle {
  transfer: OutboundTransfer;
  /** Where the producer continues: the first chunk's offset. */
  offset: Promise<number>;
}

export interface TensorReader {
  record: SpoolRecord;
  offset: number;
  /** Chunks of the tensor from `offset` (read with bounded memory). */
  chunks: AsyncIterable<Buffer>;
}

export class TrainingNode {
  readonly limits: TrainingLimits;
  private readonly spool: Spool;
  private readonly dialers = new Map<string, PeerDialer>();
  private readonly outbound = new Map<string, OutboundTransfer>();
  private readonly outboundEnded = new Map<string, number>();
  private readonly inbound = new Map<string, InboundTransfer>();
  private readonly inboundEnded = new Map<string, { summary: TransferSummary; at: number }>();
  private readonly opening = new Map<string, Promise<void>>();
  private readonly subscribers = new Set<Subscriber>();
  private readonly links = new Set<Link>();
  private nextStream = 1;
  private nextFlow = 1;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(readonly opts: TrainingNodeOptions) {
    this.limits = { ...defaultTrainingLimits, ...opts.limits };
    this.spool = new Spool(opts.spoolDir, opts.atRest?.keys);
  }

  async start(): Promise<void> {
    await this.spool.init();
    this.timer = setInterval(() => void this.housekeeping(), 1000);
    this.timer.unref();
  }

  /** Routes a training-segment link's messages (dialed by us to `peer`, or accepted by the listener). */
  attachLink(link: Link, peer?: string): void {
    if (link.segment !== 'training') {
      this.opts.onAudit?.({ action: 'training.link.refused', detail: `link ${link.id} from ${link.remoteAddress} is on the ${link.segment} segment` });
      void link.close('training transfers are only accepted on the training segment');
      return;
    }
    if (this.links.has(link)) return;
    this.links.add(link);
    this.opts.onLink?.(link, peer);
    link.on('message', (m: InboundMessage) => this.onLinkMessage(link, m));
    link.on('drain', () => {
      for (const t of this.outbound.values()) t.onLinkDrain(link);
    });
    link.once('close', () => {
      this.links.delete(link);
      for (const t of this.outbound.values()) t.onLinkDown(link);
    });
  }

  /** Validates and starts an outbound transfer (or re-attaches a producer to one being resumed). */
  push(req: PushRequest): PushHandle {
    if (this.closed) throw new TransferError('UNAVAILABLE', 'training node is shutting down');
    const peer = this.trainingPeer(req.peer);
    checkTensorMeta(req.tensor);
    if (!Number.isSafeInteger(req.total) || req.total < 1 || req.total > this.limits.maxTensorBytes) {
      throw new TransferError('INVALID_ARGUMENT', `total_bytes must be between 1 and ${this.limits.maxTensorBytes}, got ${req.total}`);
    }
    const resume = req.resume === true;
    if (resume && !req.transferId) throw new TransferError('INVALID_ARGUMENT', 'resume needs the transfer_id of the transfer to continue');
    const id = req.transferId ? checkTransferId(req.transferId) : newTransferId();
    const sink = req.sink ?? 'spool';

    const existing = this.outbound.get(id);
    if (existing !== undefined && !existing.finished) {
      if (!resume) throw new TransferError('ALREADY_EXISTS', `transfer ${id} is in progress; set resume to continue it`);
      if (existing.opts.peer !== peer.name || existing.opts.total !== req.total || existing.opts.tensor.name !== req.tensor.name) {
        throw new TransferError('INVALID_ARGUMENT', `transfer ${id} was started with a different peer, tensor or size`);
      }
      // The newest producer wins: an old stream whose client already gave up may not have
      // noticed yet that it is dead.
      if (existing.producerAttached) existing.emit('superseded');
      existing.producerAttached = true;
      // This node still holds everything the last producer handed over.
      return { transfer: existing, offset: existing.accepted.then(() => existing.producedBytes) };
    }
    if (existing !== undefined && existing.state === 'completed') {
      // A finished transfer keeps its record: the same id again is refused, or answered with
      // the result when resuming (OutboundTransfer.adoptCompleted does the same when only the
      // peer remembers it).
      if (!resume) throw new TransferError('ALREADY_EXISTS', `transfer ${id} already completed; set resume to get its result, or use another id`);
      if (existing.opts.peer !== peer.name || existing.opts.total !== req.total || existing.opts.tensor.name !== req.tensor.name) {
        throw new TransferError('INVALID_ARGUMENT', `transfer ${id} was completed with a different peer, tensor or size`);
      }
      return { transfer: existing, offset: Promise.resolve(existing.opts.total) };
    }
    if (existing !== undefined) this.outbound.delete(id);
    let active = 0;
    for (const t of this.outbound.values()) if (!t.finished) active++;
    if (active >= this.limits.maxTransfers) throw new TransferError('RESOURCE_EXHAUSTED', `${active} transfers in flight (limit ${this.limits.maxTransfers}); retry later`);

    const dialer = this.dialerFor(peer);
    const transfer = new OutboundTransfer({
      id,
      peer: peer.name,
      fromNode: this.opts.nodeName,
      tensor: req.tensor,
      total: req.total,
      sink,
      resume,
      flow: this.allocFlow(),
      streamId: this.allocStream(),
      ...(req.tenant !== undefined ? { tenant: req.tenant } : {}),
      windowBytes: this.limits.windowBytes,
      maxChunkBytes: this.limits.maxChunkBytes,
      resumeTimeoutMs: this.limits.resumeTimeoutMs,
      maxCorruptChunks: this.limits.maxCorruptChunks,
      links: dialer,
      ...(this.opts.onTransferEvent ? { onEvent: this.opts.onTransferEvent } : {}),
      ...(this.opts.corruptChunk ? { corruptChunk: this.opts.corruptChunk } : {}),
    });
    transfer.producerAttached = true;
    this.outbound.set(id, transfer);
    const stats = this.opts.stats;
    stats?.begin('outbound', id, 0, resume);
    // A resumed transfer continues from the receiver's offset: those bytes were counted before.
    if (stats !== undefined && resume) transfer.accepted.then((offset) => stats.skipTo('outbound', id, offset), () => {});
    let reported = false;
    transfer.on('state', () => {
      if (!transfer.finished) return;
      this.outboundEnded.set(id, Date.now());
      if (stats !== undefined && !reported) {
        reported = true;
        const s = transfer.summary();
        stats.end(s, s.errorStatus);
      }
    });
    transfer.start();
    return { transfer, offset: transfer.accepted };
  }

  /** Registers a Subscribe stream; returns the function that removes it. */
  subscribe(sub: Subscriber): () => void {
    this.subscribers.add(sub);
    return () => this.subscribers.delete(sub);
  }

  status(id: string): TransferSummary {
    const out = this.outbound.get(id);
    if (out !== undefined) return out.summary();
    const inb = this.inbound.get(id);
    if (inb !== undefined) return inb.summary();
    const ended = this.inboundEnded.get(id);
    if (ended !== undefined) return ended.summary;
    const rec = this.spool.completedRecord(id);
    if (rec !== undefined) return recordSummary(rec);
    throw new TransferError('NOT_FOUND', `no transfer ${JSON.stringify(id)} on this node`);
  }

  /** Transfers in progress (both directions), for metrics. */
  *active(): Generator<TransferSummary> {
    for (const t of this.outbound.values()) if (!t.finished) yield t.summary();
    for (const t of this.inbound.values()) if (!t.finished) yield t.summary();
  }

  list(): TransferSummary[] {
    const seen = new Set<string>();
    const out: TransferSummary[] = [];
    const add = (s: TransferSummary) => {
      if (!seen.has(`${s.direction}/${s.id}`)) {
        seen.add(`${s.direction}/${s.id}`);
        out.push(s);
      }
    };
    for (const t of this.outbound.values()) add(t.summary());
    for (const t of this.inbound.values()) add(t.summary());
    for (const e of this.inboundEnded.values()) add(e.summary);
    for (const r of this.spool.completedRecords()) add(recordSummary(r));
    return out;
  }

  cancel(id: string, reason: string): TransferSummary {
    const t = this.outbound.get(id);
    if (t === undefined) throw new TransferError('NOT_FOUND', `no outbound transfer ${JSON.stringify(id)} on this node`);
    t.cancel(reason || 'cancelled by the client');
    return t.summary();
  }

  /** Opens a received (spooled, verified) tensor for reading from `offset`. */
  async read(ref: { transferId?: string; name?: string }, offset: number): Promise<TensorReader> {
    const found = ref.transferId ? this.spool.completedRecord(ref.transferId) : ref.name ? this.spool.latestByName(ref.name) : undefined;
    if (found === undefined) {
      const what = ref.transferId ? `transfer ${JSON.stringify(ref.transferId)}` : `tensor ${JSON.stringify(ref.name ?? '')}`;
      throw new TransferError('NOT_FOUND', `no completed spooled ${what} on this node`);
    }
    const record = found;
    const withheld = await this.spool.withheld(record.id);
    if (withheld !== undefined) {
      throw new TransferError('FAILED_PRECONDITION', `tensor ${JSON.stringify(record.tensor.name)} (transfer ${record.id}) is quarantined: ${String(withheld.reason ?? 'suspected poisoning')}; an admin releases it with \`sluice training release ${record.id} --reason TEXT\``);
    }
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > record.total) {
      throw new TransferError('INVALID_ARGUMENT', `offset ${offset} is outside the ${record.total}-byte tensor`);
    }
    const spool = this.spool;
    const onAudit = this.opts.onAudit;
    const chunkBytes = this.limits.maxChunkBytes;
    async function* chunks(): AsyncGenerator<Buffer> {
      yield* spool.reader(record, offset, chunkBytes);
      // Read to the end under a retired key version (after a rotation): re-encrypt it now.
      spool.reseal(record).catch((err: unknown) => onAudit?.({ action: 'training.spool.reseal_failed', detail: `${record.id}: ${(err as Error).message}` }));
    }
    return { record, offset, chunks: chunks() };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const t of this.outbound.values()) t.fail(new TransferError('UNAVAILABLE', 'training node is shutting down'));
    await Promise.all([...this.inbound.values()].map((t) => t.drop('training node is shutting down', true)));
    await Promise.all([...this.dialers.values()].map((d) => d.close()));
  }

  // ---- internals ----

  private trainingPeer(name: string): TrainingPeerConfig {
    const peer = this.opts.peers.find((p) => p.name === name);
    const training = this.opts.peers.filter((p) => p.segment === 'training').map((p) => p.name);
    if (peer === undefined) {
      throw new TransferError('NOT_FOUND', `unknown peer ${JSON.stringify(name)}; training peers: ${training.length ? training.join(', ') : '(none configured)'}`);
    }
    if (peer.segment !== 'training') {
      this.opts.onAudit?.({ action: 'training.transfer.refused', detail: `transfer to ${name}, a ${peer.segment}-segment peer` });
      throw new TransferError(
        'FAILED_PRECONDITION',
        `peer ${JSON.stringify(name)} is on the ${peer.segment} segment; training transfers travel only on the training segment (training peers: ${training.join(', ') || 'none'})`,
      );
    }
    return peer;
  }

  private dialerFor(peer: PeerAddress): PeerDialer {
    let d = this.dialers.get(peer.name);
    if (d === undefined) {
      d = new PeerDialer(peer, {
        transport: this.opts.transport,
        segmentKey: this.opts.segmentKey,
        ...(this.opts.maxMessageBytes !== undefined ? { maxMessageBytes: this.opts.maxMessageBytes } : {}),
        ...(this.opts.device !== undefined ? { device: this.opts.device } : {}),
        onLink: (link) => this.attachLink(link, peer.name),
      });
      this.dialers.set(peer.name, d);
    }
    return d;
  }

  private allocStream(): number {
    const id = this.nextStream;
    this.nextStream = this.nextStream >= 0x7fff_ffff ? 1 : this.nextStream + 1;
    return id;
  }

  private allocFlow(): number {
    const id = this.nextFlow;
    this.nextFlow = this.nextFlow >= 0x7fff_ffff ? 1 : this.nextFlow + 1;
    return id;
  }

  private onLinkMessage(link: Link, m: InboundMessage): void {
    if (!isTrainingKind(m.kind)) {
      m.release?.();
      return;
    }
    // A pooled CHUNK's slab goes back once its data is written (InboundTransfer.onChunk);
    // anything else is small and decoded into views of its body: copied, and the slab returned.
    let body = m.body;
    if (m.release !== undefined && m.kind !== TrainingKind.CHUNK) {
      body = Buffer.from(body);
      m.release();
    }
    const release = m.kind === TrainingKind.CHUNK ? m.release : undefined;
    let msg: PeerMessage;
    try {
      msg = decodePeerMessage(m.kind, body);
    } catch (err) {
      release?.();
      if (err instanceof PeerProtocolError) {
        this.opts.onAudit?.({ action: 'training.protocol.violation', detail: `${link.remoteAddress}: ${err.message}` });
        void link.close(`training protocol violation: ${err.message}`);
        return;
      }
      throw err;
    }
    switch (msg.kind) {
      case TrainingKind.OPEN:
        void this.onOpen(link, m.streamId, msg, m.tenant);
        return;
      case TrainingKind.CHUNK: {
        const t = this.inbound.get(msg.id);
        if (t === undefined) {
          release?.();
          sendQuietly(link, { cls: 'control', kind: TrainingKind.ERROR, streamId: m.streamId, body: encodeError(msg.id, 'NOT_FOUND', `no transfer ${msg.id} is being received; reopen it`) });
          return;
        }
        t.onChunk(link, msg.offset, msg.crc, msg.data, release);
        return;
      }
      case TrainingKind.FINISH:
        this.inbound.get(msg.id)?.onFinish(link, msg.total, msg.sha256);
        return;
      case TrainingKind.CANCEL: {
        const t = this.inbound.get(msg.id);
        if (t !== undefined) t.onCancel(msg.reason);
        else if (this.spool.completedRecord(msg.id) === undefined) void this.spool.discard(msg.id);
        return;
      }
      default:
        this.outbound.get(msg.id)?.onPeerMessage(msg, link);
    }
  }

  private async onOpen(link: Link, streamId: number, msg: Extract<PeerMessage, { kind: typeof TrainingKind.OPEN }>, tenant: number): Promise<void> {
    const refuse = (status: Parameters<typeof encodeError>[1], text: string) =>
      sendQuietly(link, { cls: 'control', kind: TrainingKind.ERROR, streamId, body: encodeError(msg.id, status, text) });
    // Two OPENs of one id (a quick redial) are handled one after the other.
    const prior = this.opening.get(msg.id);
    const run = (async () => {
      if (prior) await prior.catch(() => {});
      try {
        await this.open(link, streamId, msg, tenant);
      } catch (err) {
        const e = err instanceof TransferError ? err : new TransferError('INTERNAL', (err as Error).message);
        refuse(e.status, e.message);
      }
    })();
    this.opening.set(msg.id, run);
    await run;
    if (this.opening.get(msg.id) === run) this.opening.delete(msg.id);
  }

  private async open(link: Link, streamId: number, msg: Extract<PeerMessage, { kind: typeof TrainingKind.OPEN }>, tenantId: number): Promise<void> {
    const sameTensor = (from: string, name: string, total: number) => from === msg.from && name === msg.tensor.name && total === msg.total;
    if (msg.total < 1 || msg.total > this.limits.maxTensorBytes) {
      throw new TransferError('INVALID_ARGUMENT', `tensor of ${msg.total} bytes; this node accepts 1 to ${this.limits.maxTensorBytes}`);
    }
    const live = this.inbound.get(msg.id);
    if (live !== undefined) {
      if (!sameTensor(live.opts.from, live.opts.tensor.name, live.opts.total)) throw new TransferError('ALREADY_EXISTS', `transfer id ${msg.id} is in use for another tensor`);
      if (!msg.resume) throw new TransferError('ALREADY_EXISTS', `transfer ${msg.id} is already being received; resume it`);
      const offset = await live.attach(link, streamId);
      if (this.opts.stats !== undefined) this.opts.stats.resumes.inbound++;
      live.sendOpened(offset);
      return;
    }
    const done = this.spool.completedRecord(msg.id);
    if (done !== undefined) {
      if (!sameTensor(done.from, done.tensor.name, done.total)) throw new TransferError('ALREADY_EXISTS', `transfer id ${msg.id} is in use for another tensor`);
      sendQuietly(link, { cls: 'control', kind: TrainingKind.OPENED, streamId, body: encodeOpened(msg.id, done.total, true) });
      sendQuietly(link, { cls: 'control', kind: TrainingKind.RESULT, streamId, body: encodeResult(msg.id, Buffer.from(done.sha256 ?? '', 'hex')) });
      return;
    }
    const ended = this.inboundEnded.get(msg.id);
    if (ended !== undefined && ended.summary.state === 'completed' && ended.summary.sha256) {
      sendQuietly(link, { cls: 'control', kind: TrainingKind.OPENED, streamId, body: encodeOpened(msg.id, ended.summary.total, true) });
      sendQuietly(link, { cls: 'control', kind: TrainingKind.RESULT, streamId, body: encodeResult(msg.id, ended.summary.sha256) });
      return;
    }
    this.inboundEnded.delete(msg.id);
    let active = 0;
    for (const t of this.inbound.values()) if (!t.finished) active++;
    if (active >= this.limits.maxTransfers) throw new TransferError('RESOURCE_EXHAUSTED', `${active} transfers being received (limit ${this.limits.maxTransfers})`);

    let transfer: InboundTransfer;
    const common = {
      id: msg.id,
      from: msg.from,
      tensor: msg.tensor,
      total: msg.total,
      sinkKind: msg.sink,
      maxPendingBytes: Math.max(4 * this.limits.windowBytes, 4 * this.limits.maxChunkBytes),
      maxCorruptChunks: this.limits.maxCorruptChunks,
      onEnd: (t: InboundTransfer) => this.onInboundEnd(t),
      ...(this.opts.onTransferEvent ? { onEvent: this.opts.onTransferEvent } : {}),
    };
    if (msg.sink === 'spool') {
      const rec = await this.spool.readRecord(msg.id);
      if (rec !== undefined && !sameTensor(rec.from, rec.tensor.name, rec.total)) throw new TransferError('ALREADY_EXISTS', `transfer id ${msg.id} is in use for another tensor`);
      if (rec !== undefined && !msg.resume) throw new TransferError('ALREADY_EXISTS', `transfer ${msg.id} has a partial copy on the peer; resume it or use another id`);
      const tenant = this.opts.atRest?.tenantName(tenantId);
      if (tenant !== undefined && rec?.tenant !== undefined && rec.tenant !== tenant) throw new TransferError('ALREADY_EXISTS', `transfer id ${msg.id} is in use by another tenant`);
      const partial = (msg.resume && rec !== undefined ? await this.reopenPartial(msg.id) : undefined) ?? (await this.spool.create(msg.id, msg.from, msg.tensor, msg.total, tenant));
      const sink = new SpoolSink(this.spool, msg.id, partial.handle, (sha) => this.announceSpooled(transfer, sha), partial.sealed);
      transfer = new InboundTransfer({ ...common, sink, offset: partial.offset, hash: partial.hash });
    } else {
      const sub = this.findSubscriber(msg.tensor.name);
      if (sub === undefined) {
        throw new TransferError('FAILED_PRECONDITION', `no subscriber for tensor ${JSON.stringify(msg.tensor.name)} on node ${this.opts.nodeName} (sink STREAM); start Subscribe there first or use SINK_SPOOL`);
      }
      transfer = new InboundTransfer({ ...common, sink: new StreamSink(sub, msg.id, msg.total), offset: 0, hash: createHash('sha256') });
      await sub.send({ begin: { transferId: msg.id, from: msg.from, tensor: msg.tensor, totalBytes: msg.total, sink: 'stream', offset: 0 } });
    }
    this.inbound.set(msg.id, transfer);
    if (msg.sink === 'spool') this.announce(msg.tensor.name, { begin: { transferId: msg.id, from: msg.from, tensor: msg.tensor, totalBytes: msg.total, sink: 'spool', offset: 0 } });
    const offset = await transfer.attach(link, streamId);
    this.opts.stats?.begin('inbound', msg.id, offset, msg.resume);
    transfer.sendOpened(offset);
  }

  /** A partial to resume; one whose sealed records fail authentication is quarantined and the transfer starts over. */
  private async reopenPartial(id: string) {
    try {
      return await this.spool.reopen(id);
    } catch (err) {
      if (!(err instanceof AtRestError)) throw err;
      this.opts.onAudit?.({ action: 'training.spool.tampered', detail: `partial of ${id}: ${err.message}` });
      await this.spool.quarantine(id, `resume refused: ${err.message}`);
      return undefined;
    }
  }

  private findSubscriber(name: string): Subscriber | undefined {
    for (const s of this.subscribers) {
      if (s.closed) {
        this.subscribers.delete(s);
        continue;
      }
      if (name.startsWith(s.namePrefix)) return s;
    }
    return undefined;
  }

  private announce(name: string, event: ReceiveEvent): void {
    for (const s of this.subscribers) if (!s.closed && s.includeSpooled && name.startsWith(s.namePrefix)) void s.send(event).catch(() => {});
  }

  private announceSpooled(t: InboundTransfer, sha256: Buffer): void {
    const end = (): void => this.announce(t.opts.tensor.name, { end: { transferId: t.id, totalBytes: t.opts.total, sha256 } });
    const inspect = this.opts.inspectSpooled;
    if (inspect === undefined) return end();
    // The tensor is verified and on disk; the check reads it there. A flagged one is withheld
    // (subscribers never hear of it, Pull refuses it) until released.
    const open = async (): Promise<TensorFile> => {
      const rec = this.spool.completedRecord(t.id);
      if (rec === undefined) throw new TransferError('NOT_FOUND', `${t.id} is no longer spooled`);
      return this.spool.openTensor(rec);
    };
    inspect({ id: t.id, from: t.opts.from, tensor: t.opts.tensor, file: this.spool.tensorPath(t.id), open }).then(
      async (verdict) => {
        if (verdict.withhold) await this.spool.withhold(t.id, { reason: verdict.reason, tensor: t.opts.tensor.name, from: t.opts.from });
        else end();
      },
      () => end(), // a check that cannot run (unreadable datatype, I/O) never loses a tensor
    );
  }

  private onInboundEnd(t: InboundTransfer): void {
    if (this.inbound.get(t.id) === t) this.inbound.delete(t.id);
    const summary = t.summary();
    this.inboundEnded.set(t.id, { summary, at: Date.now() });
    this.opts.stats?.end(summary, summary.errorStatus);
    if (t.state !== 'completed' && t.opts.sinkKind === 'spool') {
      this.announce(t.opts.tensor.name, { aborted: { transferId: t.id, reason: t.summary().error ?? t.state } });
    }
  }

  private async housekeeping(): Promise<void> {
    const now = Date.now();
    for (const [id, t] of this.outbound) {
      if (t.finished) {
        if (now - (this.outboundEnded.get(id) ?? now) > this.limits.finishedRetentionMs) {
          this.outbound.delete(id);
          this.outboundEnded.delete(id);
        }
        continue;
      }
      const waiting = t.state === 'sending' || t.state === 'verifying' || t.state === 'connecting';
      const outstanding = t.ackedBytes < t.producedBytes || t.state === 'verifying' || t.currentLink !== undefined && t.state === 'connecting';
      if (waiting && outstanding && now - t.lastPeerActivity > this.limits.stallTimeoutMs) {
        t.fail(new TransferError('UNAVAILABLE', `peer "${t.opts.peer}" stopped answering for transfer ${id} (${Math.round(this.limits.stallTimeoutMs / 1000)} s); resume it later`));
      } else if (!t.producerAttached && t.ackedBytes === t.producedBytes && now - t.lastPeerActivity > this.limits.producerIdleMs) {
        t.fail(new TransferError('ABORTED', `transfer ${id}: the producer went away and did not resume`));
      }
    }
    for (const [id, e] of this.inboundEnded) if (now - e.at > this.limits.finishedRetentionMs) this.inboundEnded.delete(id);
    for (const t of this.inbound.values()) {
      if (now - t.lastActivity > this.limits.partialRetentionMs) void t.drop('the sender went away', false);
    }
    try {
      for (const id of await this.spool.stalePartials(this.limits.partialRetentionMs, new Set(this.inbound.keys()))) await this.spool.discard(id);
    } catch {
      // the spool directory is checked again on the next round
    }
  }
}

function recordSummary(r: SpoolRecord): TransferSummary {
  return {
    id: r.id,
    direction: 'inbound',
    peer: r.from,
    tensor: r.tensor,
    total: r.total,
    acked: r.state === 'completed' ? r.total : 0,
    state: r.state === 'completed' ? 'completed' : 'receiving',
    sink: 'spool',
    ...(r.sha256 ? { sha256: Buffer.from(r.sha256, 'hex') } : {}),
  };
}
