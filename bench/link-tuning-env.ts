// Link tuning for the transport benchmarks from the environment, to try other settings
// without editing code: SLUICE_BENCH_FRAME_BYTES (training frame payload),
// SLUICE_BENCH_SEAL_AHEAD (bytes sealed ahead of the socket) and SLUICE_BENCH_RECEIVE_BUFFER
// (bytes of each read arena). Unset: the defaults.
import type { LinkTuning } from '../src/transport/types.ts';

export function benchLinkTuning(env: NodeJS.ProcessEnv = process.env): LinkTuning {
  const tuning: LinkTuning = {};
  if (env.SLUICE_BENCH_FRAME_BYTES !== undefined) tuning.frameBytes = { training: Number(env.SLUICE_BENCH_FRAME_BYTES) };
  if (env.SLUICE_BENCH_SEAL_AHEAD !== undefined) tuning.sealAheadBytes = Number(env.SLUICE_BENCH_SEAL_AHEAD);
  if (env.SLUICE_BENCH_RECEIVE_BUFFER !== undefined) tuning.receiveBufferBytes = Number(env.SLUICE_BENCH_RECEIVE_BUFFER);
  return tuning;
}
