// Benchmark suites by name: `npm run bench` runs them all, `npm run bench -- NAME...` some.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run as transportTcp } from './transport-tcp.ts';

export const suites: Record<string, () => Promise<void>> = {
  'transport-tcp': transportTcp,
};

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const names = process.argv.slice(2);
  const unknown = names.filter((n) => !(n in suites));
  if (unknown.length > 0) {
    console.error(`unknown suite(s): ${unknown.join(', ')}; available: ${Object.keys(suites).join(', ')}`);
    process.exit(2);
  }
  for (const name of names.length > 0 ? names : Object.keys(suites)) {
    console.log(`== ${name}`);
    await (suites[name] as () => Promise<void>)();
  }
}
