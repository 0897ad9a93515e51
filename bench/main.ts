// Benchmark suites by name: `npm run bench` (and `sluice bench`) runs them all,
// `npm run bench -- NAME...` some. Arguments that start with `-` (e.g. --quick) are passed to
// every suite that runs; every suite honours --quick (a short smoke run). `--list` lists the
// suites and `--help` says this, both without running any. To add a suite: write bench/<name>.ts exporting `run(args)` and
// register it below; suites are imported only when they run, so one suite's set-up never
// slows another's.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type BenchSuite = (args: readonly string[]) => Promise<unknown>;

export interface BenchSuiteEntry {
  /** One line for listings. */
  readonly summary: string;
  readonly run: BenchSuite;
}

export const suites: Readonly<Record<string, BenchSuiteEntry>> = {
  crypto: {
    summary: 'AES-256-GCM seal, 4 KiB-16 MiB: native addon vs node:crypto vs `openssl speed`',
    run: async (args) => (await import('./crypto.ts')).run(args),
  },
  'transport-tcp': {
    summary: 'TCP link, 1 MiB messages: AES-256-GCM and framing-only vs a plain node:net pair',
    run: async (args) => (await import('./transport-tcp.ts')).run(args),
  },
  rdma: {
    summary: 'RDMA link in one soft-RoCE guest, 1 MiB messages: sluice (null AEAD, AES-256-GCM) vs ib_write_bw, TCP link alongside',
    run: async (args) => (await import('./rdma.ts')).run(args),
  },
  inference: {
    summary: 'inference path (h2load): sluice pair vs direct, nginx one hop and the nginx TLS pair; added p50, CPU per call, throughput, open-loop p99',
    run: async (args) => (await import('./inference.ts')).run(args),
  },
  'egress-cpu': {
    summary: 'CPU per call of the egress process alone: TypeScript egress vs the native engine (--quick: a smoke run)',
    run: async (args) => (await import('./egress-cpu.ts')).run(args),
  },
  security: {
    summary: 'cost of the security gates (API key, JWT, mTLS, fsynced audit) on the inference path',
    run: async (args) => (await import('./security.ts')).run(args),
  },
  pii: {
    summary: 'PII recognizers: recall/precision per class on the frozen corpus, scan cost per KiB, and the cost for tenants without a policy (paired)',
    run: async (args) => (await import('./pii.ts')).run(args),
  },
  mixed: {
    summary: 'inference open loop at a fixed rate with and without a bulk tensor push: sluice pair vs nginx grpc_pass',
    run: async (args) => (await import('./mixed.ts')).run(args),
  },
  threats: {
    summary: 'threat detection on frozen workloads: extraction (PRADA), FGSM-like inputs, poisoning; false positives and cost',
    run: async (args) => (await import('./threats.ts')).run(args),
  },
  'at-rest': {
    summary: 'training spool write (1 MiB chunks) and read-back MiB/s, plaintext vs sealed under a tenant key (security.atRest)',
    run: async (args) => (await import('./at-rest.ts')).run(args),
  },
  soak: {
    summary: 'mixed inference + training through a gated node with faults on a schedule (10 min; --quick 60 s): RSS, fds, audit loss, transfer digests',
    run: async (args) => (await import('./soak.ts')).run(args),
  },
  'mixed-rdma': {
    summary: 'the mixed scenario at the link level in one soft-RoCE guest: inference round trips with and without bulk, RDMA and TCP links',
    run: async (args) => (await import('./mixed-rdma.ts')).run(args),
  },
};

/** Names that are not suites (empty when all are known). */
export function unknownSuites(names: readonly string[]): string[] {
  return names.filter((n) => !Object.hasOwn(suites, n));
}

/** One line per suite: name and summary. */
export function listing(): string {
  const width = Math.max(...Object.keys(suites).map((n) => n.length));
  return Object.entries(suites)
    .map(([name, s]) => `  ${name.padEnd(width)}  ${s.summary}`)
    .join('\n');
}

export const USAGE = 'npm run bench -- [NAME...] [--quick] [--list]';

export async function main(argv: readonly string[]): Promise<number> {
  if (argv.includes('--list')) {
    console.log(listing());
    return 0;
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(`usage: ${USAGE}\n  --quick  every suite: fewer rounds and messages (a smoke run, noisier figures)\n  --list   list the suites without running any\n\nsuites:\n${listing()}`);
    return 0;
  }
  const names = argv.filter((a) => !a.startsWith('-'));
  const options = argv.filter((a) => a.startsWith('-'));
  const unknown = unknownSuites(names);
  if (unknown.length > 0) {
    console.error(`unknown suite(s): ${unknown.join(', ')}; available: ${Object.keys(suites).join(', ')}`);
    return 2;
  }
  for (const name of names.length > 0 ? names : Object.keys(suites)) {
    console.log(`== ${name}`);
    await (suites[name] as BenchSuiteEntry).run(options);
  }
  return 0;
}

/** The lock every benchmark run holds, so two never measure each other (flock(1)). */
export const BENCH_LOCK = '/tmp/sluice-bench.lock';

/**
 * Runs this process again under `flock BENCH_LOCK` unless it already holds the lock: a run
 * waits for another to finish instead of measuring it. Returns the exit code, or undefined when
 * this process holds the lock (or flock is missing) and should run the suites itself.
 */
function rerunUnderLock(argv: readonly string[]): number | undefined {
  if (process.env.SLUICE_BENCH_LOCKED === '1' || argv.includes('--list') || argv.includes('--help') || argv.includes('-h')) return undefined;
  const r = spawnSync('flock', [BENCH_LOCK, process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, SLUICE_BENCH_LOCKED: '1' },
  });
  if (r.error !== undefined) return undefined; // no flock(1): run unlocked
  return r.status ?? 1;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  process.exitCode = rerunUnderLock(argv) ?? (await main(argv));
}
