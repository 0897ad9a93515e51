// Benchmark suites by name: `npm run bench` runs them all, `npm run bench -- NAME...` some.
// Arguments that start with `-` (e.g. --quick) are passed to every suite that runs.
// To add a suite: write bench/<name>.ts exporting `run(args)` and register it below; suites
// are imported only when they run, so one suite's set-up never slows another's.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type BenchSuite = (args: readonly string[]) => Promise<void>;

export const suites: Readonly<Record<string, BenchSuite>> = {
  crypto: async (args) => (await import('./crypto.ts')).run(args),
  'transport-tcp': async (args) => (await import('./transport-tcp.ts')).run(args),
  inference: async () => (await import('./inference.ts')).run(),
  security: async () => (await import('./security.ts')).run(),
};

export async function main(argv: readonly string[]): Promise<number> {
  const names = argv.filter((a) => !a.startsWith('-'));
  const options = argv.filter((a) => a.startsWith('-'));
  const unknown = names.filter((n) => !Object.hasOwn(suites, n));
  if (unknown.length > 0) {
    console.error(`unknown suite(s): ${unknown.join(', ')}; available: ${Object.keys(suites).join(', ')}`);
    return 2;
  }
  for (const name of names.length > 0 ? names : Object.keys(suites)) {
    console.log(`== ${name}`);
    await (suites[name] as BenchSuite)(options);
  }
  return 0;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
