// The ingress' way across the inference segment when the node's gRPC ingress runs on the native
// engine: the REST/WebSocket gateway and the gRPC calls the engine relays to TypeScript send
// their CALLs on the engine's own links (one link set per peer, no TypeScript PeerLinks). The
// CALL header is built here exactly as for a TypeScript link (segment-call.ts); the engine sends
// it in a request slot (an integer from the free list below), enforces the deadline with its
// own timer (CANCEL DEADLINE to the egress), and answers each call with one 'front-done' event:
// the REPLY's bytes, or why not, turned into the same errors a TypeScript link gives.
import { EventEmitter } from 'node:events';
import { SluiceError } from '../errors.ts';
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';
import type { RequestContext } from '../ingress/request-context.ts';
import {
  cancelledError,
  deadlineError,
  linkClosedError,
  linkDownError,
  noLiveLinkError,
  noteReplied,
  noteSent,
  prepareCall,
  readReply,
  type SegmentChannel,
  sendFailedError,
} from '../ingress/segment-call.ts';
import type { Logger } from '../telemetry/logger.ts';
import { TransportErrorCode } from '../transport/errors.ts';
import type { CallMethod, EnvelopeVersion } from '../wire/inference-envelope.ts';
import { FrontOutcome } from './engine-events.ts';
import type { EngineFrontCallDone, EngineLinkClose, EngineLinkInfo, NativeEngine } from './native-engine.ts';

/** The engine's code for a message over maxMessageBytes (native/engine/inference_link.h kTooBig). */
const ENGINE_TOO_BIG = 'SLUICE_ERR_TRANSPORT_TOO_BIG';
/** Slots the engine has (front_calls.h kMaxSlots). */
const MAX_SLOTS = 65536;
/** A call whose done event has not come this long after its deadline is failed here (the event was dropped). */
const LOST_EVENT_GRACE_MS = 2000;

/** An egress peer and the engine dialer that keeps its link up. */
export interface EnginePeer {
  name: string;
  dialer: number;
  /** host:port, for the messages. */
  address: string;
}

interface PeerState {
  name: string;
  dialer: number;
  address: string;
  /** The engine link id while the link is up. */
  link: number | undefined;
  remoteAddress: string;
  lastError: string;
  tried: boolean;
  /** Envelope version the peer speaks, learned from its replies (undefined: not yet known). */
  peerVersion: EnvelopeVersion | undefined;
}

interface Pending {
  ctx: RequestContext;
  peer: PeerState;
  payload: Buffer;
  envelopeVersion: EnvelopeVersion;
  v1Header: (() => Buffer) | undefined;
  /** Submissions of this slot so far, mod 0x8000 (the engine counts the same). */
  generation: number;
  /** The caller has its answer (cancelled, or failed by the lost-event guard); the slot waits for the engine's event. */
  settled: boolean;
  resolve(payload: Buffer): void;
  reject(err: InferenceError): void;
}

/**
 * Events, as PeerLinks': 'link' (peer, remoteAddress) when a link to a peer comes up,
 * 'link-down' (peer, why), 'connect-error' (peer, err) when a dial fails.
 */
export class EngineSegmentChannel extends EventEmitter implements SegmentChannel {
  readonly #engine: NativeEngine;
  readonly #logger: Logger;
  readonly #peers = new Map<string, PeerState>();
  readonly #byDialer = new Map<number, PeerState>();
  /** Slot -> the call in it (undefined: free). */
  readonly #slots: (Pending | undefined)[] = [];
  /** Submission count per slot, mod 0x8000. */
  readonly #generations: number[] = [];
  readonly #free: number[] = [];
  #inflight = 0;
  #rr = 0;
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(engine: NativeEngine, peers: readonly EnginePeer[], logger: Logger) {
    super();
    this.#engine = engine;
    this.#logger = logger;
    for (const { name, dialer, address } of peers) {
      const s: PeerState = { name, dialer, address, link: undefined, remoteAddress: '', lastError: 'not connected yet', tried: false, peerVersion: undefined };
      this.#peers.set(name, s);
      this.#byDialer.set(dialer, s);
    }
    engine.on('link', (info: EngineLinkInfo) => {
      const s = info.role === 'initiator' ? this.#byDialer.get(info.dialer) : undefined;
      if (s === undefined) return;
      s.link = info.id;
      s.remoteAddress = info.remoteAddress;
      s.tried = true;
      s.peerVersion = undefined;
      this.#logger.info({ peer: s.name, address: info.remoteAddress, link: info.linkId, transport: 'tcp' }, 'inference link up');
      this.emit('link', s.name, info.remoteAddress);
    });
    engine.on('close', (id: number, info: EngineLinkClose) => {
      for (const s of this.#peers.values()) {
        if (s.link !== id) continue;
        s.link = undefined;
        s.lastError = `link closed (${info.by}: ${info.reason})`;
        if (!this.#closed) this.#logger.warn({ peer: s.name, by: info.by, reason: info.reason }, 'inference link down; reconnecting');
        this.emit('link-down', s.name, s.lastError);
      }
    });
    engine.on('dial-failed', (dialer: number, err: Error) => {
      const s = this.#byDialer.get(dialer);
      if (s === undefined) return;
      s.lastError = `connect to ${s.address} failed: ${err.message}`;
      s.tried = true;
      this.emit('connect-error', s.name, err);
    });
    engine.on('front-done', (d: EngineFrontCallDone) => this.#done(d));
  }

  /** Peer names, in config order. */
  get names(): string[] {
    return [...this.#peers.keys()];
  }

  get inflight(): number {
    return this.#inflight;
  }

  isUp(name: string): boolean {
    return this.#peers.get(name)?.link !== undefined;
  }

  /** Resolves once every peer has been tried once (up or failed), or after `timeoutMs`. */
  async waitForFirstAttempts(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if ([...this.#peers.values()].every((s) => s.tried)) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  }

  pick(names: readonly string[]): string {
    const n = names.length;
    for (let i = 0; i < n; i++) {
      const name = names[(this.#rr + i) % n]!;
      if (this.#peers.get(name)?.link !== undefined) {
        this.#rr = (this.#rr + i + 1) % 0x40000000;
        return name;
      }
    }
    throw noLiveLinkError(names, (nm) => this.#peers.get(nm)?.lastError);
  }

  callOnce(ctx: RequestContext, method: CallMethod, payload: Buffer, peer: string): Promise<Buffer> {
    const s = this.#peers.get(peer);
    if (this.#closed) return Promise.reject(linkDownError(peer, 'is down'));
    // A passed deadline is said as such (prepareCall), before whether the link is up.
    if (ctx.deadline > Date.now() && s?.link === undefined) return Promise.reject(linkDownError(peer, 'is down'));
    const prepared = prepareCall(ctx, method, peer, s?.peerVersion);
    if (!('header' in prepared)) return Promise.reject(prepared);
    const slot = this.#free.pop() ?? (this.#slots.length < MAX_SLOTS ? this.#slots.length : -1);
    if (slot < 0) return Promise.reject(new InferenceError(InferenceErrorCode.OVERLOADED, `more than ${MAX_SLOTS} calls out on the engine's links`));
    return new Promise<Buffer>((resolve, reject) => {
      const p: Pending = { ctx, peer: s!, payload, envelopeVersion: prepared.envelopeVersion, v1Header: prepared.v1Header, generation: 0, settled: false, resolve, reject };
      this.#slots[slot] = p;
      this.#inflight++;
      ctx.cancel = () => {
        this.#engine.cancelFrontCall(slot);
        this.#settle(p);
        reject(cancelledError());
      };
      noteSent(ctx, peer);
      this.#submit(slot, p, prepared.header);
    });
  }

  /** Fails every call out (the engine is stopping). */
  close(): void {
    this.#closed = true;
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const p of this.#slots) {
      if (p === undefined || p.settled) continue;
      this.#settle(p);
      p.reject(linkClosedError(p.peer.name, 'local', 'shutting down'));
    }
  }

  #submit(slot: number, p: Pending, header: Buffer): void {
    p.generation = this.#generations[slot] = ((this.#generations[slot] ?? 0) + 1) & 0x7fff;
    try {
      this.#engine.frontCall(slot, p.peer.dialer, p.ctx.tenant, Math.max(1, Math.ceil(p.ctx.deadline - Date.now())), header, p.payload);
    } catch (err) {
      // The engine stopped under us: no event will come for this slot.
      this.#free.push(slot);
      this.#slots[slot] = undefined;
      if (!p.settled) {
        this.#settle(p);
        p.reject(sendFailedError(p.peer.name, err));
      }
      return;
    }
    this.#sweeper ??= setInterval(() => this.#sweepLost(), 1000).unref();
  }

  #settle(p: Pending): void {
    if (p.settled) return;
    p.settled = true;
    this.#inflight--;
    p.ctx.cancel = undefined;
    noteReplied(p.ctx);
  }

  #done(d: EngineFrontCallDone): void {
    const p = this.#slots[d.slot];
    if (p === undefined || p.generation !== d.generation) return;
    if (d.outcome === FrontOutcome.REPLY && !p.settled) {
      const out = readReply(d.body ?? Buffer.alloc(0), p.envelopeVersion, p.v1Header !== undefined, p.peer.name, p.ctx.method);
      if (out.kind === 'resend-v1' || out.peerVersion === 1) {
        if (p.peer.peerVersion !== 1) this.#logger.info({ peer: p.peer.name }, 'egress peer speaks inference envelope v1 (older sluice): no trace context, no ModelConfig/ModelStatistics/RepositoryIndex on this link');
        p.peer.peerVersion = 1;
      } else if (out.peerVersion === 2) p.peer.peerVersion = 2;
      if (out.kind === 'resend-v1') {
        // The v1 peer refused the call unread: the same slot carries it again.
        p.envelopeVersion = 1;
        const v1 = p.v1Header!;
        p.v1Header = undefined;
        this.#submit(d.slot, p, v1());
        return;
      }
      this.#release(d.slot);
      this.#settle(p);
      if (out.kind === 'ok') p.resolve(out.payload);
      else {
        if (out.malformed === true) this.#logger.warn({ request_id: p.ctx.requestId, err: out.error.message }, 'malformed reply from egress');
        p.reject(out.error);
      }
      return;
    }
    this.#release(d.slot);
    if (p.settled) return;
    this.#settle(p);
    p.reject(this.#failure(p, d));
  }

  #failure(p: Pending, d: EngineFrontCallDone): InferenceError {
    const peer = p.peer.name;
    switch (d.outcome) {
      case FrontOutcome.NO_LINK:
        return linkDownError(peer, 'is down');
      case FrontOutcome.LINK_CLOSED: {
        const cut = d.text.indexOf(': ');
        return linkClosedError(peer, cut < 0 ? 'error' : d.text.slice(0, cut), cut < 0 ? d.text : d.text.slice(cut + 2));
      }
      case FrontOutcome.DEADLINE:
        return deadlineError(p.ctx);
      case FrontOutcome.CANCELLED:
        return cancelledError();
      case FrontOutcome.SEND_FAILED:
      default:
        return sendFailedError(peer, new SluiceError(d.code === ENGINE_TOO_BIG ? TransportErrorCode.MESSAGE_TOO_BIG : (d.code ?? 'SLUICE_ERR_TRANSPORT_CLOSED'), d.text));
    }
  }

  #release(slot: number): void {
    this.#slots[slot] = undefined;
    this.#free.push(slot);
  }

  /**
   * The engine answers every call, but its event ring drops records when JS falls far behind:
   * a call still open well past its deadline is failed here so no caller waits forever. Its slot
   * stays taken (the engine may still answer into it).
   */
  #sweepLost(): void {
    const now = Date.now();
    let open = 0;
    for (const p of this.#slots) {
      if (p === undefined || p.settled) continue;
      open++;
      if (now < p.ctx.deadline + LOST_EVENT_GRACE_MS) continue;
      this.#settle(p);
      this.#logger.warn({ request_id: p.ctx.requestId, peer: p.peer.name }, 'no answer from the engine for a call past its deadline (event dropped?)');
      p.reject(deadlineError(p.ctx));
    }
    if (open === 0 && this.#sweeper !== undefined) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }
}
