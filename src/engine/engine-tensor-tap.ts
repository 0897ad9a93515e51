// The reading half of the engine's sampled tensor tap (native/engine/tensor_tap.h has the
// layout): the loop thread copies the numeric inputs of a sample of fast-path ModelInfer calls
// into this ring (a SharedArrayBuffer), and TypeScript drains it in batches, on one 'tensor-tap'
// event per drain, into the threat detectors (ThreatMonitor.tap: the same queue and detectors
// the TypeScript ingress's tap feeds). The engine never waits for this side: a full ring drops
// the sample and counts it in the header, read here into sluice_threat_tap_dropped_total.
import { type Datatype } from '../kserve/datatypes.ts';
import { rawToFloats, tapInputs } from '../security/threats/inference-tap.ts';
import type { TappedTensor } from '../security/threats/threat-monitor.ts';

export const TAP_HEADER_BYTES = 64;
const WRAP = 0xffffffff;
const WHOLE_MESSAGE = 0xffff;
const RECORD_HEADER = 16;
const INPUT_HEADER = 8;

/** Datatype codes of tensor_tap.h (index = code). */
const DATATYPE_CODES: readonly (Datatype | undefined)[] = [undefined, 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BF16'];

export class TapRecordError extends Error {
  readonly code = 'SLUICE_ERR_TAP_RECORD';
}

/** One tapped call as the engine wrote it (`tenant` is the frame tenant id: 0 without one). */
export interface EngineTappedCall {
  tenant: number;
  model: string;
  requestId: string;
  inputs: TappedTensor[];
}

const align8 = (n: number): number => (n + 7) & ~7;

/**
 * Parses one record (its bytes, header included). The engine writes them, but the bytes are
 * checked all the same: a bad record is a TapRecordError, never a read out of bounds.
 */
export function parseTapRecord(rec: Uint8Array): EngineTappedCall {
  const dv = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
  const need = (at: number, n: number, what: string): void => {
    if (at + n > rec.byteLength) throw new TapRecordError(`tap record of ${rec.byteLength} bytes ends inside ${what} (at ${at}, ${n} bytes)`);
  };
  need(0, RECORD_HEADER, 'its header');
  const tenant = dv.getUint32(4, true);
  const modelLen = dv.getUint16(8, true);
  const idLen = dv.getUint16(10, true);
  const count = dv.getUint16(12, true);
  let p = RECORD_HEADER;
  need(p, modelLen + idLen, 'the model and request id');
  const text = new TextDecoder();
  const model = text.decode(rec.subarray(p, p + modelLen));
  const requestId = text.decode(rec.subarray(p + modelLen, p + modelLen + idLen));
  p = align8(p + modelLen + idLen);
  if (count === WHOLE_MESSAGE) {
    need(p, INPUT_HEADER, 'the message header');
    const bytes = dv.getUint32(p + 4, true);
    p += INPUT_HEADER;
    need(p, bytes, 'the message');
    let inputs: TappedTensor[];
    try {
      inputs = tapInputs(rec.slice(p, p + bytes));
    } catch (err) {
      throw new TapRecordError(`tapped message unreadable: ${(err as Error).message}`);
    }
    return { tenant, model, requestId, inputs };
  }
  const inputs: TappedTensor[] = [];
  for (let i = 0; i < count; i++) {
    need(p, INPUT_HEADER, `input ${i}'s header`);
    const nameLen = dv.getUint16(p, true);
    const dt = DATATYPE_CODES[dv.getUint8(p + 2)];
    const dims = dv.getUint8(p + 3);
    const bytes = dv.getUint32(p + 4, true);
    if (dt === undefined) throw new TapRecordError(`input ${i} has an unknown datatype code ${dv.getUint8(p + 2)}`);
    p += INPUT_HEADER;
    need(p, dims * 8 + nameLen, `input ${i}'s shape and name`);
    const shape: number[] = [];
    for (let d = 0; d < dims; d++) shape.push(dv.getFloat64(p + d * 8, true));
    p += dims * 8;
    const name = text.decode(rec.subarray(p, p + nameLen));
    p = align8(p + nameLen);
    need(p, bytes, `input ${i}'s data`);
    let values: Float32Array | undefined;
    try {
      values = rawToFloats(dt, rec.subarray(p, p + bytes));
    } catch (err) {
      throw new TapRecordError(`input ${i} (${dt}, ${bytes} bytes) unreadable: ${(err as Error).message}`);
    }
    if (values !== undefined) inputs.push({ name, shape, values });
    p = align8(p + bytes);
  }
  return { tenant, model, requestId, inputs };
}

/** The ring's memory and its reader (one reader: the main thread). */
export class EngineTensorTapRing {
  readonly buffer: SharedArrayBuffer;
  /** The whole ring, for Engine.setTensorTap. */
  readonly view: Uint8Array;
  readonly #header: Uint32Array;
  readonly #capacity: number;
  readonly #data: DataView;
  #read = 0;
  #droppedSeen = 0;
  /** Records that did not parse (0 unless the ring's memory was corrupted). */
  badRecords = 0;

  /** `capacity`: bytes of record space, a power of two (4 KiB .. 1 GiB). */
  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 4096 || capacity > 2 ** 30 || (capacity & (capacity - 1)) !== 0) {
      throw new RangeError(`tensor tap ring capacity must be a power of two within 4096 .. 2^30, not ${capacity}`);
    }
    this.#capacity = capacity;
    this.buffer = new SharedArrayBuffer(TAP_HEADER_BYTES + capacity);
    this.view = new Uint8Array(this.buffer);
    this.#header = new Uint32Array(this.buffer, 0, TAP_HEADER_BYTES / 4);
    this.#data = new DataView(this.buffer);
    // Touch every page now: a fresh mapping faults on first write, and those faults would land
    // on the engine's loop thread, one per 4 KiB of samples, during the ring's first lap.
    for (let p = 0; p < this.view.length; p += 4096) this.view[p] = 0;
    Atomics.store(this.#header, 3, 1); // armed: the first record wakes JS
  }

  /** Samples the engine dropped (ring full) since the last call. */
  takeDropped(): number {
    const d = Atomics.load(this.#header, 2);
    const delta = (d - this.#droppedSeen) >>> 0;
    this.#droppedSeen = d;
    return delta;
  }

  /** Samples the engine wrote into the ring (u32, wraps). */
  get written(): number {
    return Atomics.load(this.#header, 4);
  }

  /**
   * Hands every record written since the last drain to `onCall`, frees their space, and re-arms
   * the wake-up (checking again after, so a record written meanwhile is not left behind).
   */
  drain(onCall: (call: EngineTappedCall) => void): number {
    let n = 0;
    for (;;) {
      const w = Atomics.load(this.#header, 0);
      while (this.#read !== w) {
        const off = this.#read & (this.#capacity - 1);
        const avail = (w - this.#read) >>> 0;
        const len = this.#data.getUint32(TAP_HEADER_BYTES + off, true);
        if (len === WRAP) {
          this.#read = (this.#read + (this.#capacity - off)) >>> 0;
          continue;
        }
        if (len < RECORD_HEADER || len % 8 !== 0 || len > avail || off + len > this.#capacity) {
          // Not a record the engine writes: skip what is there rather than read garbage.
          this.badRecords++;
          this.#read = w;
          break;
        }
        try {
          onCall(parseTapRecord(this.view.subarray(TAP_HEADER_BYTES + off, TAP_HEADER_BYTES + off + len)));
          n++;
        } catch (err) {
          if (!(err instanceof TapRecordError)) throw err;
          this.badRecords++;
        }
        this.#read = (this.#read + len) >>> 0;
      }
      Atomics.store(this.#header, 1, this.#read);
      Atomics.store(this.#header, 3, 1);
      if (Atomics.load(this.#header, 0) === this.#read) return n;
    }
  }
}
