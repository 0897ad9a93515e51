// `sluice transfers watch [ID...]`: polls TensorTransfer GetStatus (the named transfers) or List
// (all of them) and redraws their progress bars with rate and ETA until every watched transfer
// has ended, or --timeout-s passes (bounded: it never polls forever). On a terminal the lines
// are redrawn in place; otherwise each poll that changed something prints its lines.
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TransferStatus } from '../../training/client.ts';
import { UsageError, type CliCommand } from '../command.ts';
import { openTransferClient, TRANSFER_CLIENT_HELP, TRANSFER_CLIENT_OPTIONS } from '../transfer-client.ts';
import { isTerminal, RateMeter, statusJson, transferLine } from '../transfer-progress.ts';

function positive(v: string | undefined, fallback: number, name: string): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number`);
  return n;
}

export const transfersWatchCommand: CliCommand = {
  name: 'transfers watch',
  summary: 'follow training transfers live: progress bars, rate and ETA, until they end',
  usage: 'sluice transfers watch [ID...] [--interval-ms N] [--timeout-s N] [--address HOST:PORT | --config FILE] [--json]',
  help: () =>
    [
      TRANSFER_CLIENT_HELP,
      '  --interval-ms N      poll every N ms (default 500)',
      '  --timeout-s N        stop after N seconds even if transfers are still running (default 3600; exit 3)',
      '',
      'Without IDs: every transfer the node lists; it stops when none is running.',
      'Exit 0 when every watched transfer completed, 1 if one failed or was cancelled.',
    ].join('\n'),
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { ...TRANSFER_CLIENT_OPTIONS, 'interval-ms': { type: 'string' }, 'timeout-s': { type: 'string' } },
    });
    const intervalMs = positive(values['interval-ms'], 500, 'interval-ms');
    const deadline = Date.now() + positive(values['timeout-s'], 3600, 'timeout-s') * 1000;
    const { client } = openTransferClient(values);
    const tty = process.stdout.isTTY === true && values.json !== true;
    const meter = new RateMeter();
    let drawn = 0;
    let last = '';
    try {
      for (;;) {
        const statuses: TransferStatus[] = positionals.length > 0 ? await Promise.all(positionals.map((id) => client.status(id))) : await client.list();
        const now = Date.now();
        const lines = statuses.map((s) => transferLine(s, meter.update(s, now)));
        const text = values.json === true ? JSON.stringify(statuses.map(statusJson)) : lines.join('\n');
        if (tty) {
          // Up over what was drawn last, clear to the end of the screen, draw again.
          process.stdout.write(`${drawn > 0 ? `\x1b[${drawn}F` : ''}\x1b[0J${text}\n`);
          drawn = lines.length;
        } else if (text !== last) {
          process.stdout.write(`${text}\n`);
        }
        last = text;
        const done = statuses.every(isTerminal);
        if (done) {
          if (statuses.length === 0) process.stdout.write('no transfers\n');
          return statuses.every((s) => s.state === 'completed') ? 0 : 1;
        }
        if (Date.now() + intervalMs > deadline) {
          process.stderr.write('sluice transfers watch: --timeout-s passed with transfers still running\n');
          return 3;
        }
        await sleep(intervalMs);
      }
    } finally {
      client.close();
    }
  },
};
