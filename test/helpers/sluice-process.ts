// The tests' name for the `sluice serve` child-process runner. The runner itself lives in
// scripts/sluice-child.ts because the benchmarks use it too; this keeps one implementation.
export { CLI, ROOT, closedPort, startSluice, type Endpoints, type SluiceProcess } from '../../scripts/sluice-child.ts';
