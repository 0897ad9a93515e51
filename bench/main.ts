// Benchmark dispatcher. `npm run bench` runs every suite; `npm run bench -- crypto` runs one;
// arguments that are not suite names (e.g. --quick) are passed to each suite that runs.
// To add a suite: write bench/<name>.ts exporting `run(args)` and register it in `suites`.
import { pathToFileURL } from 'node:url';

export type BenchSuite = (args: readonly string[]) => Promise<void>;

export const suites: Readonly<Record<string, BenchSuite>> = {
  crypto: async (args) => (await import('./crypto.ts')).run(args),
};

export async function main(argv: readonly string[]): Promise<number> {
  const names = argv.filter((a) => !a.startsWith('-'));
  const options = argv.filter((a) => a.startsWith('-'));
  const unknown = names.filter((n) => !Object.hasOwn(suites, n));
  if (unknown.length > 0) {
    console.error(`unknown bench suite ${unknown.join(', ')}; suites: ${Object.keys(suites).join(', ')}`);
    return 2;
  }
  for (const name of names.length > 0 ? names : Object.keys(suites)) {
    console.log(`\n== bench ${name} ==`);
    await (suites[name] as BenchSuite)(options);
  }
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
