// V8 flags every sluice process starts with. scripts/sluice-child.ts passes them from here;
// bin/sluice.mjs (its shebang), package.json's start scripts and the Dockerfile's ENTRYPOINT
// spell them out because they cannot import this (test/node/v8-flags.test.ts keeps them in
// step). They must be on the command line: Node refuses them in NODE_OPTIONS.
//
// --single-threaded-gc: no parallel or concurrent GC helper threads. A sidecar shares its
// cores with the model server and the other sidecars (on the 2-core bench machine, 4 processes),
// so the helpers mostly contend with the threads doing the work. Measured with one call at a
// time through two sluice pairs taking turns, flags on one pair only, both ways round
// (docs/inference.md, "Measurements"): identity 1 MiB, the pair's CPU per request ~5% lower and
// its added p50 lower in 9 of 10 rounds (by ~2.5-4 ms of ~15); simple and 16 KiB unchanged
// within noise (their GC is ~2% of the main thread). --max-semi-space-size (16/32/64) showed no
// difference: the per-request garbage is small and scavenges are cheap.
//
// --heap-growing-percent is not here: the training plane sets it at run time when it starts
// (training.heapGrowthPercent, src/node/heap-growth.ts), so a node embedded as a library gets it
// too and a node without a training segment keeps V8's own factor.
export const SLUICE_V8_FLAGS: readonly string[] = ['--single-threaded-gc'];
