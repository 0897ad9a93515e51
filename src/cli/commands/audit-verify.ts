import { parseArgs } from 'node:util';
import { describeVerification, verifyAuditFile } from '../../audit/verify.ts';
import { SluiceError } from '../../errors.ts';
import { UsageError, type CliCommand } from '../command.ts';
import { loadCliConfig } from '../security-context.ts';

export const auditVerifyCommand: CliCommand = {
  name: 'audit verify',
  summary: 'check an audit log: hash chain, Merkle checkpoints, anchor; names the first bad entry',
  usage: 'sluice audit verify [FILE] [--anchor FILE | --no-anchor] [--json] [--config FILE]',
  async run(args) {
    const { positionals, values } = parseArgs({
      args,
      allowPositionals: true,
      options: { anchor: { type: 'string' }, 'no-anchor': { type: 'boolean' }, json: { type: 'boolean' }, config: { type: 'string' } },
    });
    if (positionals.length > 1) throw new UsageError('expected at most one FILE');
    // Without FILE: the serving log named by the config (--config, $SLUICE_CONFIG, or the default).
    const file = positionals[0] ?? loadCliConfig(values.config).security.audit.path;
    if (values.anchor !== undefined && values['no-anchor'] === true) throw new UsageError('--anchor and --no-anchor exclude each other');
    let result;
    try {
      result = await verifyAuditFile(file, { anchorFile: values['no-anchor'] === true ? false : values.anchor });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') throw new SluiceError('SLUICE_ERR_AUDIT_READ', `${file}: cannot read (${code})`);
      throw err;
    }
    if (values.json === true) {
      const { sinceCheckpoint: _omit, ...report } = result;
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } else {
      process.stdout.write(`${describeVerification(result)}\n`);
    }
    return result.ok ? 0 : 1;
  },
};
