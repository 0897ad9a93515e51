// Resolves a transport's LinkTuning and a segment's maxMessageBytes into the numbers a link
// runs with, checking each one with an exact message.
import { DEFAULT_KEY_LIMITS, checkKeyLimits, type KeyLimits } from '../crypto/key-limits.ts';
import { PriorityLinkScheduler, type LinkSchedulerFactory } from '../scheduler/link-scheduler.ts';
import { MAX_FRAME_PAYLOAD, MAX_MESSAGE_LENGTH } from '../wire/frame-header.ts';
import type { ReceivePool } from '../wire/receive-pool.ts';
import type { LinkTuning, TrafficClass } from './types.ts';

export const DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024 * 1024;
export const DEFAULT_HIGH_WATER_MARK = 8 * 1024 * 1024;
export const DEFAULT_FRAME_BYTES: Readonly<Record<TrafficClass, number>> = Object.freeze({
  control: 64 * 1024,
  inference: 256 * 1024,
  training: 256 * 1024,
});
export const DEFAULT_CLOSE_TIMEOUT_MS = 5000;
export const DEFAULT_TAIL_WITNESS_MS = 200;
export const DEFAULT_SEAL_AHEAD_BYTES = 1024 * 1024;
export const DEFAULT_RECEIVE_BUFFER_BYTES = 2 * 1024 * 1024;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
const MIN_REASSEMBLY_BYTES = 64 * 1024 * 1024;

export interface ResolvedLinkTuning {
  maxMessageBytes: number;
  highWaterMark: number;
  frameBytes: Readonly<Record<TrafficClass, number>>;
  maxReassemblyBytes: number;
  maxPendingMessages: number;
  closeTimeoutMs: number;
  /** 0: off. */
  tailWitnessMs: number;
  sealAheadBytes: number;
  receiveBufferBytes: number;
  keyLimits: KeyLimits;
  scheduler: LinkSchedulerFactory;
  receivePool: ReceivePool | undefined;
}

function positiveInt(name: string, v: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(v) || v < 1 || v > max) throw new RangeError(`${name} must be an integer in [1, ${max}], got ${v}`);
  return v;
}

function atLeast(name: string, v: number, min: number): number {
  if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`${name} must be an integer of at least ${min}, got ${v}`);
  return v;
}

export function resolveLinkTuning(t: LinkTuning | undefined, maxMessageBytes: number | undefined): ResolvedLinkTuning {
  const maxMsg = positiveInt('maxMessageBytes', maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES, MAX_MESSAGE_LENGTH);
  const frameBytes = { ...DEFAULT_FRAME_BYTES, ...t?.frameBytes };
  for (const [cls, n] of Object.entries(frameBytes)) positiveInt(`frameBytes.${cls}`, n, MAX_FRAME_PAYLOAD);
  return {
    maxMessageBytes: maxMsg,
    highWaterMark: positiveInt('highWaterMark', t?.highWaterMark ?? DEFAULT_HIGH_WATER_MARK),
    frameBytes,
    maxReassemblyBytes: positiveInt('maxReassemblyBytes', t?.maxReassemblyBytes ?? Math.max(2 * maxMsg, MIN_REASSEMBLY_BYTES)),
    maxPendingMessages: 4096,
    closeTimeoutMs: positiveInt('closeTimeoutMs', t?.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS),
    tailWitnessMs: t?.tailWitnessMs === 0 ? 0 : positiveInt('tailWitnessMs', t?.tailWitnessMs ?? DEFAULT_TAIL_WITNESS_MS, 60_000),
    sealAheadBytes: positiveInt('sealAheadBytes', t?.sealAheadBytes ?? DEFAULT_SEAL_AHEAD_BYTES),
    // Reads need room for at least two 64 KiB reads; a frame larger than the buffer still
    // works (it is gathered), only slower.
    receiveBufferBytes: atLeast('receiveBufferBytes', t?.receiveBufferBytes ?? DEFAULT_RECEIVE_BUFFER_BYTES, 128 * 1024),
    keyLimits: checkKeyLimits({ ...DEFAULT_KEY_LIMITS, ...t?.keyLimits }),
    scheduler: t?.scheduler ?? ((opts) => new PriorityLinkScheduler(opts)),
    receivePool: t?.receivePool,
  };
}
