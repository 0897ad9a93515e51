import { parseArgs } from 'node:util';
import { readKeyStore, rotateKey } from '../../security/api-key-store.ts';
import { parseCapabilities } from '../../security/capabilities.ts';
import { UsageError, type CliCommand } from '../command.ts';
import { auditedAdminAction, loadCliConfig } from '../security-context.ts';

export const keysRotateCommand: CliCommand = {
  name: 'keys rotate',
  summary: 'replace a key with a new one of the same tenant and at most the same capabilities',
  usage: 'sluice keys rotate ID [--caps SUBSET] [--grace-seconds N] [--store FILE] [--config FILE]',
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { caps: { type: 'string' }, 'grace-seconds': { type: 'string' }, store: { type: 'string' }, config: { type: 'string' } },
    });
    const id = positionals[0];
    if (id === undefined || positionals.length > 1) throw new UsageError('expected exactly one key ID');
    const grace = values['grace-seconds'] === undefined ? 0 : Number(values['grace-seconds']);
    if (!Number.isFinite(grace) || grace < 0) throw new UsageError('--grace-seconds must be a non-negative number');
    const cfg = loadCliConfig(values.config);
    const store = values.store ?? cfg.security.apiKeys.store;
    const caps = values.caps === undefined ? undefined : parseCapabilities(values.caps);
    const tenant = (await readKeyStore(store)).find((r) => r.id === id)?.tenant ?? null;
    const made = await auditedAdminAction(
      cfg.security.audit.adminPath,
      cfg.security.policyVersion,
      { action: 'keys.rotate', tenant, detail: (r) => ({ store, key_id: id, new_key_id: r?.record.id ?? null, caps: r?.record.caps ?? caps ?? null, grace_seconds: grace }) },
      () => rotateKey(store, id, { graceSeconds: grace, ...(caps !== undefined ? { caps } : {}) }),
    );
    process.stderr.write(`key ${id} retires at ${made.old.expires_at}; new key ${made.record.id} [${made.record.caps.join(',')}] is shown only once:\n`);
    process.stdout.write(`${made.key}\n`);
    return 0;
  },
};
