import { parseArgs } from 'node:util';
import { revealFromVaultFile, REVERSIBLE_TOKEN } from '../../security/pii/vault.ts';
import { UsageError, type CliCommand } from '../command.ts';
import { auditedAdminAction, loadCliConfig } from '../security-context.ts';

const MIN_REASON = 8;

export const piiRevealCommand: CliCommand = {
  name: 'pii reveal',
  summary: 'break glass: print the original behind a reversible PII token (recorded in the admin audit log)',
  usage: 'sluice pii reveal TOKEN --tenant T --reason TEXT [--config FILE]',
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { tenant: { type: 'string' }, reason: { type: 'string' }, config: { type: 'string' } },
    });
    const token = positionals[0];
    if (token === undefined || positionals.length > 1) throw new UsageError('expected exactly one TOKEN, e.g. "[EMAIL:0123456789abcdef]"');
    if (!new RegExp(`^${REVERSIBLE_TOKEN.source}$`).test(token)) throw new UsageError(`${JSON.stringify(token)} is not a reversible PII token ([CLASS:16 hex digits])`);
    const tenant = values.tenant;
    if (tenant === undefined || tenant === '') throw new UsageError('--tenant is required');
    const reason = values.reason?.trim() ?? '';
    if (reason.length < MIN_REASON) throw new UsageError(`--reason is required (at least ${MIN_REASON} characters): a reveal is a break-glass action`);
    const cfg = loadCliConfig(values.config);
    const vault = cfg.security.pii.vault;
    if (vault === undefined) throw new UsageError('the config has no security.pii.vault');
    const value = await auditedAdminAction(
      cfg.security.audit.adminPath,
      cfg.security.policyVersion,
      // The token and who asked, never the value.
      { action: 'pii.reveal', tenant, reason, detail: () => ({ token, vault: vault.path, break_glass: true }) },
      () => revealFromVaultFile({ dir: vault.path, keyFile: vault.keyFile, tenant, token }),
    );
    process.stdout.write(`${value}\n`);
    return 0;
  },
};
