// `sluice transfers status ID`: one transfer in detail (TensorTransfer GetStatus).
import { parseArgs } from 'node:util';
import { UsageError, type CliCommand } from '../command.ts';
import { openTransferClient, TRANSFER_CLIENT_HELP, TRANSFER_CLIENT_OPTIONS } from '../transfer-client.ts';
import { statusJson, transferDetail } from '../transfer-progress.ts';

export const transfersStatusCommand: CliCommand = {
  name: 'transfers status',
  summary: 'show one training transfer: state, progress bar, bytes, SHA-256 or error',
  usage: 'sluice transfers status ID [--address HOST:PORT | --config FILE] [--json]',
  help: () => TRANSFER_CLIENT_HELP,
  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: TRANSFER_CLIENT_OPTIONS });
    if (positionals.length !== 1) throw new UsageError('expected exactly one transfer ID');
    const { client } = openTransferClient(values);
    try {
      const s = await client.status(positionals[0]!);
      process.stdout.write(values.json === true ? `${JSON.stringify(statusJson(s))}\n` : `${transferDetail(s)}\n`);
      return 0;
    } finally {
      client.close();
    }
  },
};
