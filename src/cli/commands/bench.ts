// `sluice bench [NAME...]`: the benchmark suites of bench/main.ts, the same registry that
// `npm run bench` runs, so both print the same tables and write the same bench/results files.
// The suites live in the source checkout (bench/ is not part of the runtime image), so the
// registry is loaded only when this command runs, and its absence is a clear error.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { BenchSuiteEntry } from '../../../bench/main.ts';
import { SluiceError } from '../../errors.ts';
import { UsageError, type CliCommand } from '../command.ts';

const BENCH_MAIN = fileURLToPath(new URL('../../../bench/main.ts', import.meta.url));
const USAGE = 'sluice bench [NAME...] [--quick] [--list]';

interface BenchRegistry {
  suites: Readonly<Record<string, BenchSuiteEntry>>;
  listing(): string;
  unknownSuites(names: readonly string[]): string[];
  main(argv: readonly string[]): Promise<number>;
}

async function loadRegistry(): Promise<BenchRegistry> {
  if (!existsSync(BENCH_MAIN)) {
    throw new SluiceError('SLUICE_ERR_BENCH_UNAVAILABLE', `benchmarks come with the source checkout, and this installation has none (no ${BENCH_MAIN})`);
  }
  return (await import(pathToFileURL(BENCH_MAIN).href)) as BenchRegistry;
}

export const benchCommand: CliCommand = {
  name: 'bench',
  summary: 'run benchmark suites (all, or the ones named) and print their tables',
  usage: USAGE,
  async help() {
    return `  --quick  every suite: fewer rounds and messages (a smoke run, noisier figures)\n  --list   list the suites without running any\n\nsuites:\n${(await loadRegistry()).listing()}`;
  },
  async run(args) {
    const { positionals, values } = parseArgs({
      args,
      allowPositionals: true,
      options: { quick: { type: 'boolean' }, list: { type: 'boolean' } },
    });
    const registry = await loadRegistry();
    if (values.list === true) {
      process.stdout.write(`${registry.listing()}\n`);
      return 0;
    }
    const unknown = registry.unknownSuites(positionals);
    if (unknown.length > 0) throw new UsageError(`unknown suite(s) ${unknown.join(', ')}; available: ${Object.keys(registry.suites).join(', ')}`);
    return registry.main([...positionals, ...(values.quick === true ? ['--quick'] : [])]);
  },
};
