import { parseArgs } from 'node:util';
import { readKeyStore, revokeKey } from '../../security/api-key-store.ts';
import { UsageError, type CliCommand } from '../command.ts';
import { auditedAdminAction, loadCliConfig } from '../security-context.ts';

export const keysRevokeCommand: CliCommand = {
  name: 'keys revoke',
  summary: 'revoke a key at once (servers pick it up within their reload interval)',
  usage: 'sluice keys revoke ID [--reason TEXT] [--store FILE] [--config FILE]',
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { reason: { type: 'string' }, store: { type: 'string' }, config: { type: 'string' } },
    });
    const id = positionals[0];
    if (id === undefined || positionals.length > 1) throw new UsageError('expected exactly one key ID');
    const cfg = loadCliConfig(values.config);
    const store = values.store ?? cfg.security.apiKeys.store;
    const tenant = (await readKeyStore(store)).find((r) => r.id === id)?.tenant ?? null;
    const reason = values.reason ?? 'revoked by operator';
    await auditedAdminAction(cfg.security.audit.adminPath, cfg.security.policyVersion, { action: 'keys.revoke', tenant, detail: () => ({ store, key_id: id, reason }) }, () =>
      revokeKey(store, id, reason),
    );
    process.stderr.write(`key ${id} revoked\n`);
    return 0;
  },
};
