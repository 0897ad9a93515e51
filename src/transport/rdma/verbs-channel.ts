// One RC queue pair with its registered pools, as the RDMA link uses it. The pools are
// JS-owned ArrayBuffers registered once by the addon: send slots are sealed into in place and
// posted by index (the index is the wr_id), receive slots are opened in place and reposted by
// index once consumed. Credits and completions come from native memory through typed arrays,
// so checking them costs no call into the addon.
import { fromNative, RdmaError, RdmaErrorCode, wcStatusHint, wcStatusName } from './rdma-errors.ts';
import { rdmaDeviceStats, type RdmaDeviceStats } from '../../telemetry/rdma-stats.ts';
import type { RdmaDevice } from './devices.ts';
import {
  COMPLETION_WORDS,
  CompletionKind,
  COUNTER_COUNT,
  Counter,
  CTRL_SLOTS,
  loadVerbs,
  type NativeConnection,
  type NativeEndpoint,
  type VerbsBinding,
  type VerbsFault,
} from './verbs-addon.ts';

export interface VerbsChannelOptions {
  /** Sends in flight, each from its own slot of send memory. */
  sendSlots: number;
  /** Credits granted to the peer: receives it may fill before we repost. */
  recvWindow: number;
  /** Bytes per slot: the largest SEND either way. */
  slotBytes: number;
  /** Local ACK timeout exponent (4.096 us * 2^n); default 16 (268 ms: emulated guests are slow). */
  ackTimeout?: number;
  /**
   * Transport retries before a send fails with IBV_WC_RETRY_EXC_ERR; default 6. (7 means
   * "retry forever" to rdma_rxe, so a dead peer would never be noticed.)
   */
  retryCount?: number;
  /** GRH traffic class of the queue pair (DSCP << 2, segments.<name>.dscp); default 0. */
  trafficClass?: number;
}

export interface VerbsChannelHandlers {
  /** A SEND arrived in receive slot `slot`; `data` is a view valid until repost(slot). */
  onReceive(slot: number, data: Buffer): void;
  /** Send slot `slot` is free again. */
  onSendComplete(slot: number): void;
  /** After a batch of completions: credits or send slots may have come back. */
  onProgress(): void;
  /** The queue pair failed (reported once); close the channel. */
  onError(err: RdmaError): void;
}

/** Endpoint of a queue pair plus the flow-control facts the peer needs. */
export interface ChannelEndpoint extends NativeEndpoint {
  window: number;
  slotBytes: number;
}

const COMPLETION_BATCH = 64;

const PROTOCOL_REASONS: Record<number, string> = {
  1: 'a SEND without immediate data',
  2: 'an operation other than SEND',
  3: 'more credit than sends outstanding',
};

export class VerbsChannel {
  readonly options: Required<VerbsChannelOptions>;
  readonly sendPool: Buffer;
  readonly recvPool: Buffer;
  readonly #native: NativeConnection;
  readonly #binding: VerbsBinding;
  readonly #counters = new Uint32Array(COUNTER_COUNT);
  readonly #completions = new Uint32Array(COMPLETION_BATCH * COMPLETION_WORDS);
  #handlers: VerbsChannelHandlers | undefined;
  /** What arrived before handlers were attached (set-up runs on another channel meanwhile). */
  readonly #early: { slot: number; length: number }[] = [];
  #earlyError: RdmaError | undefined;
  readonly #freeSend: number[] = [];
  #maxSendBytes: number;
  #closed = false;
  /** This device's counters (metrics read them at scrape time). */
  readonly #stats: RdmaDeviceStats;
  #registered = 0;

  /** Without `handlers`, receives and errors are kept until attach(). */
  constructor(device: RdmaDevice, options: VerbsChannelOptions, handlers?: VerbsChannelHandlers) {
    const v = loadVerbs();
    if (!('binding' in v)) throw new RdmaError(RdmaErrorCode.UNAVAILABLE, `RDMA is not available: ${v.reason}`);
    this.#binding = v.binding;
    checkInt('sendSlots', options.sendSlots, 1, 4096);
    checkInt('recvWindow', options.recvWindow, 1, 4096);
    checkInt('slotBytes', options.slotBytes, 64, 64 * 1024 * 1024);
    const ackTimeout = checkInt('ackTimeout', options.ackTimeout ?? 16, 1, 31);
    const retryCount = checkInt('retryCount', options.retryCount ?? 6, 0, 7);
    const trafficClass = checkInt('trafficClass', options.trafficClass ?? 0, 0, 255);
    this.options = { ...options, ackTimeout, retryCount, trafficClass };
    this.#handlers = handlers;
    const sendMemory = new ArrayBuffer(options.sendSlots * options.slotBytes);
    const recvMemory = new ArrayBuffer((options.recvWindow + CTRL_SLOTS) * options.slotBytes);
    this.sendPool = Buffer.from(sendMemory);
    this.recvPool = Buffer.from(recvMemory);
    this.#stats = rdmaDeviceStats(device.info.name);
    try {
      this.#native = new this.#binding.Connection(device.native, sendMemory, recvMemory, this.#counters, this.#completions, this.#onCompletions, {
        sendSlots: options.sendSlots,
        recvWindow: options.recvWindow,
        slotBytes: options.slotBytes,
        timeout: ackTimeout,
        retryCount,
        trafficClass,
      });
    } catch (err) {
      throw fromNative(err, `cannot create a queue pair on ${device.info.name}`);
    }
    for (let s = options.sendSlots - 1; s >= 0; s -= 1) this.#freeSend.push(s);
    this.#maxSendBytes = options.slotBytes;
    this.#registered = sendMemory.byteLength + recvMemory.byteLength;
    this.#stats.registeredBytes += this.#registered;
    this.#stats.queuePairs += 1;
  }

  /** Starts delivering completions to `handlers`, first whatever arrived before. */
  attach(handlers: VerbsChannelHandlers): void {
    this.#handlers = handlers;
    const slotBytes = this.options.slotBytes;
    for (const { slot, length } of this.#early.splice(0)) {
      if (this.#closed) return;
      handlers.onReceive(slot, this.recvPool.subarray(slot * slotBytes, slot * slotBytes + length));
    }
    if (this.#earlyError !== undefined && !this.#closed) handlers.onError(this.#earlyError);
    this.#earlyError = undefined;
  }

  /** Largest SEND the peer's receive slots take. */
  get maxSendBytes(): number {
    return this.#maxSendBytes;
  }

  local(): ChannelEndpoint {
    return { ...this.#native.local(), window: this.options.recvWindow, slotBytes: this.options.slotBytes };
  }

  /** Connects to the peer's queue pair (RTR, then RTS). */
  connect(remote: ChannelEndpoint): void {
    this.#maxSendBytes = Math.min(this.options.slotBytes, remote.slotBytes);
    try {
      this.#native.connect(remote, remote.window);
    } catch (err) {
      throw fromNative(err, 'cannot connect the queue pair');
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** SENDs the peer has room for right now. */
  get credits(): number {
    return this.#counters[Counter.SEND_CREDITS] as number;
  }

  get failed(): boolean {
    return this.#counters[Counter.FAILED] === 1;
  }

  get sendsInFlight(): number {
    return this.#counters[Counter.SENDS_IN_FLIGHT] as number;
  }

  counters(): Record<keyof typeof Counter, number> {
    const out = {} as Record<keyof typeof Counter, number>;
    for (const [k, i] of Object.entries(Counter)) out[k as keyof typeof Counter] = this.#counters[i] as number;
    return out;
  }

  /** True when a SEND can be posted now (a credit and a free slot). */
  get writable(): boolean {
    return !this.#closed && this.#freeSend.length > 0 && this.credits > 0 && !this.failed;
  }

  /** Takes a free send slot; undefined when all are in flight. */
  acquire(): number | undefined {
    return this.#freeSend.pop();
  }

  /** Gives back a slot acquired but not posted. */
  release(slot: number): void {
    this.#freeSend.push(slot);
  }

  /** The memory of send slot `slot` (seal into it, then post). */
  sendSlot(slot: number): Buffer {
    const n = this.options.slotBytes;
    return this.sendPool.subarray(slot * n, (slot + 1) * n);
  }

  /** Posts `length` bytes of send slot `slot`; needs a credit (check `credits` first). */
  post(slot: number, length: number): void {
    if (length > this.#maxSendBytes) throw new RangeError(`length ${length} exceeds the peer's receive slots (${this.#maxSendBytes} bytes)`);
    try {
      this.#native.postSend(slot, length);
    } catch (err) {
      throw fromNative(err, 'post send');
    }
  }

  /** Hands receive slot `slot` back to the queue pair (and its credit to the peer). */
  repost(slot: number): void {
    if (this.#closed) return;
    try {
      this.#native.repost(slot);
    } catch (err) {
      throw fromNative(err, 'post receive');
    }
  }

  /** Processes whatever completions are queued now, synchronously (not from inside a handler). */
  pollNow(): void {
    if (this.#closed) return;
    this.#native.poll();
  }

  /** The queue pair's GRH traffic class as the device reports it (ibv_query_qp; -1 unreadable or closed). */
  queryTrafficClass(): number {
    return this.#closed ? -1 : this.#native.trafficClass();
  }

  /** Destroys the queue pair and deregisters the pools (in-flight work is flushed, not reported). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.close();
    this.#stats.registeredBytes -= this.#registered;
    if (this.#registered > 0) this.#stats.queuePairs -= 1;
    this.#registered = 0;
  }

  /** Test-only (see NativeConnection.injectFault). */
  injectFault(kind: VerbsFault): void {
    this.#native.injectFault(kind);
  }

  readonly #onCompletions = (count: number, error?: Error): void => {
    if (error !== undefined) {
      // Polling, re-arming or a repost inside the poll failed: this connection is over.
      const err = fromNative(error, 'poll completions');
      this.#stats.error('local');
      if (this.#handlers === undefined) this.#earlyError ??= err;
      else if (!this.#closed) this.#handlers.onError(err);
      return;
    }
    const c = this.#completions;
    const h = this.#handlers;
    if (h === undefined) {
      this.#keepEarly(count);
      return;
    }
    // A handler that throws fails this connection (through onError), never the process: this
    // runs inside the addon's completion callback.
    try {
      this.#dispatch(h, c, count);
    } catch (err) {
      if (!this.#closed) h.onError(err instanceof RdmaError ? err : fromNative(err, 'completion handler'));
    }
  };

  #dispatch(h: VerbsChannelHandlers, c: Uint32Array, count: number): void {
    const slotBytes = this.options.slotBytes;
    for (let i = 0; i < count && !this.#closed; i += 1) {
      const o = i * COMPLETION_WORDS;
      const kind = c[o] as number;
      const slot = c[o + 1] as number;
      const length = c[o + 2] as number;
      const status = c[o + 3] as number;
      switch (kind) {
        case CompletionKind.SEND_DONE:
          this.#stats.completions.send! += 1;
          this.#freeSend.push(slot);
          h.onSendComplete(slot);
          break;
        case CompletionKind.RECV:
          this.#stats.completions.recv! += 1;
          h.onReceive(slot, this.recvPool.subarray(slot * slotBytes, slot * slotBytes + length));
          break;
        case CompletionKind.CREDIT:
          this.#stats.completions.credit! += 1;
          break; // onProgress below lets the sender use it
        case CompletionKind.ERROR: {
          const name = wcStatusName(status);
          this.#stats.error(name);
          const what = slot >>> 24 === 3 ? 'receive' : slot >>> 24 === 2 ? 'credit message' : 'send';
          h.onError(
            new RdmaError(
              RdmaErrorCode.COMPLETION,
              `${what} failed: ${this.#binding.wcStatusString(status)} (${name}, vendor_err 0x${length.toString(16)}): ${wcStatusHint(status)}`,
              { wcStatus: name },
            ),
          );
          break;
        }
        case CompletionKind.PROTOCOL_ERROR:
          this.#stats.error('protocol');
          h.onError(new RdmaError(RdmaErrorCode.PROTOCOL, `the peer sent ${PROTOCOL_REASONS[status] ?? `protocol violation ${status}`}`));
          break;
        default:
          h.onError(new RdmaError(RdmaErrorCode.PROTOCOL, `unknown completion kind ${kind}`));
      }
    }
    if (!this.#closed) h.onProgress();
  }

  #keepEarly(count: number): void {
    const c = this.#completions;
    for (let i = 0; i < count; i += 1) {
      const o = i * COMPLETION_WORDS;
      const kind = c[o] as number;
      if (kind === CompletionKind.SEND_DONE) this.#freeSend.push(c[o + 1] as number);
      else if (kind === CompletionKind.RECV) this.#early.push({ slot: c[o + 1] as number, length: c[o + 2] as number });
      else if (kind === CompletionKind.ERROR || kind === CompletionKind.PROTOCOL_ERROR) {
        this.#earlyError ??= new RdmaError(kind === CompletionKind.ERROR ? RdmaErrorCode.COMPLETION : RdmaErrorCode.PROTOCOL, `queue pair failed during set-up (${kind === CompletionKind.ERROR ? wcStatusName(c[o + 3] as number) : 'protocol violation'})`);
      }
    }
  }
}

function checkInt(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${v}`);
  return v;
}

/** Connections alive in this process (every failure path must bring this back down). */
export function liveVerbsConnections(): number {
  const v = loadVerbs();
  return 'binding' in v ? v.binding.liveConnections() : 0;
}
