import { parseArgs } from 'node:util';
import { loadConfigFile } from '../../config/load.ts';
import { UsageError, type CliCommand } from '../command.ts';

export const configCheckCommand: CliCommand = {
  name: 'config check',
  summary: 'validate a config file and print the effective config',
  usage: 'sluice config check FILE [--quiet]',
  async run(args) {
    const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { quiet: { type: 'boolean' } } });
    const file = positionals[0];
    if (file === undefined || positionals.length > 1) throw new UsageError('expected exactly one FILE');
    const cfg = loadConfigFile(file);
    if (!values.quiet) process.stdout.write(`${JSON.stringify(cfg, null, 2)}\n`);
    process.stderr.write(`${file}: ok\n`);
    return 0;
  },
};
