// The engine's link options from what the TypeScript links already use: the segment key, the
// resolved link tuning (link-tuning.ts) and the segment's DSCP mark.
import type { ResolvedLinkTuning } from '../transport/link-tuning.ts';
import type { SluiceConfig } from '../config/schema.ts';
import type { EngineLinkOptions, EngineRdmaLinkOptions } from './engine-addon.ts';

/** AF41: the inference segment's default mark (config segments.<name>.dscp). */
export const DEFAULT_INFERENCE_DSCP = 34;
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 5000;
export const MAX_HANDSHAKES_IN_PROGRESS = 64;

export interface EngineLinkExtras {
  handshakeTimeoutMs: number;
  dscp?: number;
  keepaliveTimeoutMs?: number;
  /** The segment runs over RDMA: queue pair sizing (engineRdmaOptions). */
  rdma?: EngineRdmaLinkOptions;
}

/** Spin on an RDMA link's completion queue this long before arming it (busy poll on). */
export const DEFAULT_BUSY_POLL_US = 50;

/** RDMA link options of the inference segment, with the TypeScript RDMA transport's defaults. */
export function engineRdmaOptions(config: SluiceConfig): EngineRdmaLinkOptions {
  const seg = config.segments.inference;
  return {
    ...(seg?.device !== undefined ? { device: seg.device } : {}),
    sendSlots: 16,
    recvWindow: 16,
    ackTimeout: 16,
    retryCount: 6,
    busyPoll: seg?.rdma?.busyPoll ?? false,
    busyPollUs: seg?.rdma?.busyPollUs ?? DEFAULT_BUSY_POLL_US,
  };
}

export function engineLinkOptions(key: Uint8Array, tuning: ResolvedLinkTuning, extras: EngineLinkExtras): EngineLinkOptions {
  if (key.byteLength !== 32) throw new RangeError(`segment key must be 32 bytes, got ${key.byteLength}`);
  const dscp = extras.dscp ?? DEFAULT_INFERENCE_DSCP;
  if (!Number.isInteger(dscp) || dscp < 0 || dscp > 63) throw new RangeError(`dscp must be an integer in [0, 63], got ${dscp}`);
  return {
    segment: 'inference',
    key,
    maxMessageBytes: tuning.maxMessageBytes,
    highWaterBytes: tuning.highWaterMark,
    frameBytesInference: tuning.frameBytes.inference,
    frameBytesControl: tuning.frameBytes.control,
    maxReassemblyBytes: tuning.maxReassemblyBytes,
    sealAheadBytes: tuning.sealAheadBytes,
    closeTimeoutMs: tuning.closeTimeoutMs,
    handshakeTimeoutMs: extras.handshakeTimeoutMs,
    maxHandshakes: MAX_HANDSHAKES_IN_PROGRESS,
    keepaliveTimeoutMs: extras.keepaliveTimeoutMs ?? DEFAULT_KEEPALIVE_TIMEOUT_MS,
    tailWitnessMs: tuning.tailWitnessMs,
    dscp,
    maxFramesPerKey: tuning.keyLimits.maxFramesPerKey,
    maxBytesPerKey: tuning.keyLimits.maxBytesPerKey,
    ...(extras.rdma !== undefined ? { rdma: extras.rdma } : {}),
  };
}
