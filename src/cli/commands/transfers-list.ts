// `sluice transfers list`: every transfer the node knows (TensorTransfer List), one line each
// with its progress bar.
import { parseArgs } from 'node:util';
import { UsageError, type CliCommand } from '../command.ts';
import { openTransferClient, TRANSFER_CLIENT_HELP, TRANSFER_CLIENT_OPTIONS } from '../transfer-client.ts';
import { statusJson, transferLine } from '../transfer-progress.ts';

export const transfersListCommand: CliCommand = {
  name: 'transfers list',
  summary: 'list the training transfers of a node (outbound and inbound) with their progress',
  usage: 'sluice transfers list [--address HOST:PORT | --config FILE] [--json]',
  help: () => TRANSFER_CLIENT_HELP,
  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: false, options: TRANSFER_CLIENT_OPTIONS });
    if (positionals.length > 0) throw new UsageError('unexpected arguments');
    const { client } = openTransferClient(values);
    try {
      const all = await client.list();
      if (values.json === true) process.stdout.write(`${JSON.stringify(all.map(statusJson))}\n`);
      else if (all.length === 0) process.stdout.write('no transfers\n');
      else process.stdout.write(`${all.map((s) => transferLine(s)).join('\n')}\n`);
      return 0;
    } finally {
      client.close();
    }
  },
};
