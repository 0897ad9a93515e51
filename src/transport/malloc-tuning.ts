// Once per process, before bulk traffic: keep large buffers in malloc's heap and stop glibc
// from trimming the heap after every garbage collection (native/runtime/malloc_tuning.h).
// Received messages are fresh buffers of up to many MiB; without this each one is mapped,
// page-faulted and zeroed by the kernel anew, which costs more CPU than decrypting it.
// The price: up to TRIM_THRESHOLD bytes of freed memory stay in the process after a burst.
// Skipped when SLUICE_MALLOC_TUNING=0 or when the operator set glibc's own MALLOC_* knobs.
import { loadNativeAddon } from '../crypto/native-addon.ts';

export const MMAP_THRESHOLD = 32 * 1024 * 1024; // glibc's upper bound for this setting
export const TRIM_THRESHOLD = 64 * 1024 * 1024;

export type MallocTuning = 'applied' | 'disabled' | 'operator-set' | 'unsupported';

let outcome: MallocTuning | undefined;

export function tuneMallocOnce(env: NodeJS.ProcessEnv = process.env): MallocTuning {
  if (outcome !== undefined) return outcome;
  if (env.SLUICE_MALLOC_TUNING === '0') outcome = 'disabled';
  else if (env.MALLOC_MMAP_THRESHOLD_ !== undefined || env.MALLOC_TRIM_THRESHOLD_ !== undefined || env.GLIBC_TUNABLES?.includes('malloc') === true) {
    outcome = 'operator-set';
  } else {
    outcome = loadNativeAddon().tuneMalloc(MMAP_THRESHOLD, TRIM_THRESHOLD) ? 'applied' : 'unsupported';
  }
  return outcome;
}
