// The verbs half of the native addon (native/verbs/* through native/binding.cc), typed.
// Absent when the addon was built without rdma-core headers or failed to load; callers get
// the reason instead of an exception.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeGid {
  index: number;
  gid: string;
  type: string;
  netdev: string;
}

export interface NativePort {
  port: number;
  state: string;
  linkLayer: string;
  maxMtu: number;
  activeMtu: number;
  lid: number;
  gids: NativeGid[];
}

export interface NativeDeviceInfo {
  name: string;
  nodeGuid: string;
  transport: string;
  ports: NativePort[];
}

/** An opened device: context, protection domain, and the port/GID its connections use. */
export interface NativeDevice {
  info(): { name: string; port: number; gidIndex: number; gid: string; lid: number; ethernet: boolean; activeMtu: number };
  close(): void;
}

/** What the peer needs to reach a queue pair. */
export interface NativeEndpoint {
  qpn: number;
  psn: number;
  gid: Buffer;
  lid: number;
  mtu: number;
}

export interface NativeConnectionOptions {
  sendSlots: number;
  recvWindow: number;
  slotBytes: number;
  timeout: number;
  retryCount: number;
  /** GRH traffic class (DSCP << 2). */
  trafficClass?: number;
}

export interface NativeConnection {
  local(): NativeEndpoint;
  connect(remote: NativeEndpoint, remoteWindow: number): void;
  postSend(slot: number, length: number): void;
  repost(slot: number): void;
  /** Drains the completion queue now (completions arrive through the callback, synchronously). */
  poll(): void;
  close(): void;
  /**
   * Test-only: the next poll (1), CQ re-arm (2) or receive post (3) fails as the verbs call
   * would. Throws unless SLUICE_VERBS_FAULT_INJECTION=1.
   */
  injectFault(kind: number): void;
  /** The queue pair's GRH traffic class as ibv_query_qp reads it (-1 when unreadable). */
  trafficClass(): number;
}

/** Kinds for NativeConnection.injectFault. */
export const VerbsFault = { POLL: 1, REARM: 2, POST_RECV: 3 } as const;
export type VerbsFault = (typeof VerbsFault)[keyof typeof VerbsFault];

export interface VerbsBinding {
  listDevices(): NativeDeviceInfo[];
  wcStatusString(status: number): string;
  liveConnections(): number;
  Device: new (spec: string) => NativeDevice;
  Connection: new (
    device: NativeDevice,
    sendMemory: ArrayBuffer,
    recvMemory: ArrayBuffer,
    counters: Uint32Array,
    completions: Uint32Array,
    /** (count) after completions; (0, error) once when polling itself failed: the connection is then failed. */
    onCompletions: (count: number, error?: Error) => void,
    options: NativeConnectionOptions,
  ) => NativeConnection;
  layout: { counterCount: number; completionWords: number; ctrlSlots: number };
}

// Mirrors of native/verbs/connection.h.
export const Counter = {
  SEND_CREDITS: 0,
  SENDS_IN_FLIGHT: 1,
  CREDITS_OWED: 2,
  CTRL_SENT: 3,
  CTRL_RECEIVED: 4,
  RECVS_HELD: 5,
  FAILED: 6,
} as const;
export const COUNTER_COUNT = 7;
export const CompletionKind = { SEND_DONE: 1, RECV: 2, ERROR: 3, PROTOCOL_ERROR: 4, CREDIT: 5 } as const;
export const COMPLETION_WORDS = 4;
export const CTRL_SLOTS = 4;

const ADDON = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'build', 'Release', 'sluice_native.node');

let loaded: { binding: VerbsBinding } | { reason: string } | undefined;

/** The verbs binding, or why there is none. */
export function loadVerbs(): { binding: VerbsBinding } | { reason: string } {
  if (loaded !== undefined) return loaded;
  if (!existsSync(ADDON)) {
    loaded = { reason: `the native addon is not built (${path.relative(process.cwd(), ADDON)} missing; run npm install)` };
    return loaded;
  }
  try {
    const addon = createRequire(import.meta.url)(ADDON) as { withVerbs?: boolean; verbs?: VerbsBinding };
    if (addon.withVerbs !== true || addon.verbs === undefined) {
      loaded = { reason: 'the native addon was built without verbs (install libibverbs-dev, then npm run build:native)' };
    } else {
      const l = addon.verbs.layout;
      if (l.counterCount !== COUNTER_COUNT || l.completionWords !== COMPLETION_WORDS || l.ctrlSlots !== CTRL_SLOTS) {
        loaded = { reason: `the native addon's verbs layout ${JSON.stringify(l)} does not match this code (rebuild: npm run build:native)` };
      } else {
        loaded = { binding: addon.verbs };
      }
    }
  } catch (err) {
    loaded = { reason: `the native addon failed to load: ${(err as Error).message}` };
  }
  return loaded;
}
