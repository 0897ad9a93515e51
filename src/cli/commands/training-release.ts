// `sluice training release TRANSFER_ID --reason TEXT`: ends the quarantine of a received tensor
// that threat detection withheld (security.threats.poisoning.quarantine), so Pull serves it
// again. Runs on the node (it edits the spool directory) and is recorded in the admin audit log.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SluiceError } from '../../errors.ts';
import { Spool } from '../../training/spool.ts';
import { UsageError, type CliCommand } from '../command.ts';
import { auditedAdminAction, loadCliConfig } from '../security-context.ts';

export const trainingReleaseCommand: CliCommand = {
  name: 'training release',
  summary: 'release a received tensor that threat detection quarantined (audited; needs --reason)',
  usage: 'sluice training release TRANSFER_ID --reason TEXT [--config FILE]',
  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { reason: { type: 'string' }, config: { type: 'string' } } });
    const id = positionals[0];
    if (id === undefined || positionals.length > 1) throw new UsageError('expected exactly one TRANSFER_ID');
    if (values.reason === undefined || values.reason.trim().length < 8) throw new UsageError('--reason TEXT is required (at least 8 characters): it goes into the admin audit log');
    const cfg = loadCliConfig(values.config);
    const dir = values.config !== undefined ? path.resolve(path.dirname(values.config), cfg.training.spoolDir) : cfg.training.spoolDir;
    const spool = new Spool(dir);
    const why = await spool.withheld(id);
    if (why === undefined) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `transfer ${id} is not quarantined in ${dir}`);
    await auditedAdminAction(
      cfg.security.audit.adminPath,
      cfg.security.policyVersion,
      { action: 'training.release', tenant: null, reason: values.reason, detail: () => ({ transfer: id, quarantined_for: why.reason, tensor: why.tensor, from: why.from }) },
      () => spool.release(id),
    );
    process.stdout.write(`transfer ${id} released: Pull serves it again\n`);
    return 0;
  },
};
