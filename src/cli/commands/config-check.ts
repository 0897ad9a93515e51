import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../../config/load.ts';
import { validateConfig } from '../../config/validate.ts';
import { UsageError, type CliCommand } from '../command.ts';

export const configCheckCommand: CliCommand = {
  name: 'config check',
  summary: 'validate a config file with every check serve runs (segment keys, routes, ports, spool directory) and print the effective config',
  usage: 'sluice config check FILE [--quiet]',
  async run(args) {
    const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { quiet: { type: 'boolean' } } });
    const file = positionals[0];
    if (file === undefined || positionals.length > 1) throw new UsageError('expected exactly one FILE');
    const cfg = loadConfigFile(file);
    // The same function SluiceNode.start runs for `serve`.
    validateConfig(cfg, { configDir: path.dirname(path.resolve(file)) });
    if (!values.quiet) {
      // Never echo key material.
      const shown = JSON.stringify(cfg, (k, v: unknown) => (k === 'key' && typeof v === 'string' ? '<redacted>' : v), 2);
      process.stdout.write(`${shown}\n`);
    }
    process.stderr.write(`${file}: ok\n`);
    return 0;
  },
};
