// Loads the native addon (build/Release/sluice_native.node, built by `npm install` or
// `npm run build:native`; SLUICE_NATIVE_ADDON names another build, e.g. build/Debug) and gives
// it a type. Loaded once, on first use.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SluiceError } from '../errors.ts';

/** One AES-256-GCM key (native/crypto/aes_gcm.h). Callers validate arguments (aead-args.ts); the addon refuses wrong types and lengths too. */
export interface NativeAeadContext {
  seal(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void;
  sealv(nonce: Uint8Array, aad: Uint8Array, parts: readonly Uint8Array[], out: Uint8Array): void;
  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, out: Uint8Array): boolean;
  destroy(): void;
}

export interface NativeAeadContextConstructor {
  new (key: Uint8Array): NativeAeadContext;
}

export interface NativeAddon {
  readonly abiVersion: number;
  /** Whether the addon was built with the libibverbs (RDMA) part. */
  readonly withVerbs: boolean;
  readonly AeadContext: NativeAeadContextConstructor;
  /** Process-wide malloc tuning (native/runtime/malloc_tuning.h); false where it cannot apply. */
  readonly tuneMalloc: (mmapThreshold: number, trimThreshold: number) => boolean;
  /** Names the calling thread (native/runtime/thread_control.h); at most 15 bytes are kept. */
  readonly setThreadName: (name: string) => void;
  /** Lowers the calling thread's CPU priority (SCHED_IDLE when `tryIdle`, else nice 19); returns what it got. */
  readonly lowerThreadPriority: (tryIdle: boolean) => NativeThreadPriority;
  readonly threadPriority: () => NativeThreadPriority;
  /** IP_TOS / IPV6_TCLASS = dscp << 2, then SO_PRIORITY, on a socket's file descriptor. */
  readonly setSocketClass: (fd: number, dscp: number, priority: number) => void;
  readonly getSocketClass: (fd: number) => { tos: number; priority: number; family: 'ipv4' | 'ipv6' };
}

export interface NativeThreadPriority {
  policy: 'idle' | 'batch' | 'other' | 'fifo' | 'rr' | 'unknown';
  nice: number;
  tid: number;
}

export const NATIVE_ADDON_ERROR = 'SLUICE_ERR_NATIVE_ADDON';

const RELEASE_BUILD = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../build/Release/sluice_native.node');

/** Where the addon is loaded from. */
export function nativeAddonPath(): string {
  const override = process.env.SLUICE_NATIVE_ADDON;
  return override !== undefined && override !== '' ? path.resolve(override) : RELEASE_BUILD;
}

const BUILD_HINT = 'run `npm run build:native` (needs g++, make and python3)';

let cached: NativeAddon | undefined;

export function loadNativeAddon(): NativeAddon {
  if (cached !== undefined) return cached;
  const file = nativeAddonPath();
  if (!existsSync(file)) {
    throw new SluiceError(NATIVE_ADDON_ERROR, `sluice native addon not found at ${file}: ${BUILD_HINT}`);
  }
  let loaded: unknown;
  try {
    loaded = createRequire(import.meta.url)(file);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new SluiceError(NATIVE_ADDON_ERROR, `cannot load sluice native addon (${reason}): ${BUILD_HINT}`, {
      cause: err,
    });
  }
  const addon = loaded as Partial<NativeAddon> | null;
  // A build from older sources loads fine but lacks newer exports.
  if (typeof addon?.AeadContext !== 'function' || typeof addon.tuneMalloc !== 'function' || typeof addon.setSocketClass !== 'function') {
    throw new SluiceError(NATIVE_ADDON_ERROR, `sluice native addon at ${file} is out of date: ${BUILD_HINT}`);
  }
  cached = addon as NativeAddon;
  return cached;
}
