import { parseArgs } from 'node:util';
import { createKey } from '../../security/api-key-store.ts';
import { parseCapabilities } from '../../security/capabilities.ts';
import { SluiceError } from '../../errors.ts';
import { UsageError, type CliCommand } from '../command.ts';
import { auditedAdminAction, loadCliConfig } from '../security-context.ts';

export const keysCreateCommand: CliCommand = {
  name: 'keys create',
  summary: 'create an API key bound to a tenant and capabilities; prints the key once',
  usage: 'sluice keys create --tenant T --caps infer,train[,admin] [--label L] [--expires-days N] [--store FILE] [--config FILE]',
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: false,
      options: {
        tenant: { type: 'string' },
        caps: { type: 'string' },
        label: { type: 'string' },
        'expires-days': { type: 'string' },
        store: { type: 'string' },
        config: { type: 'string' },
      },
    });
    if (positionals.length > 0) throw new UsageError('unexpected arguments');
    if (values.tenant === undefined) throw new UsageError('--tenant is required');
    if (values.caps === undefined) throw new UsageError('--caps is required');
    const cfg = loadCliConfig(values.config);
    const caps = parseCapabilities(values.caps);
    const known = cfg.security.tenants;
    if (known.length > 0 && !known.some((t) => t.name === values.tenant)) {
      throw new SluiceError('SLUICE_ERR_TENANT_UNKNOWN', `tenant "${values.tenant}" is not in security.tenants`);
    }
    let expiresAt: Date | undefined;
    if (values['expires-days'] !== undefined) {
      const days = Number(values['expires-days']);
      if (!Number.isFinite(days) || days <= 0) throw new UsageError('--expires-days must be a positive number');
      expiresAt = new Date(Date.now() + days * 86_400_000);
    }
    const store = values.store ?? cfg.security.apiKeys.store;
    const tenant = values.tenant;
    const made = await auditedAdminAction(
      cfg.security.audit.adminPath,
      cfg.security.policyVersion,
      { action: 'keys.create', tenant, detail: (r) => ({ store, caps, key_id: r?.record.id ?? null, label: values.label ?? null }) },
      () => createKey(store, { tenant, caps, ...(values.label !== undefined ? { label: values.label } : {}), ...(expiresAt !== undefined ? { expiresAt } : {}) }),
    );
    process.stderr.write(`created key ${made.record.id} for tenant ${tenant} [${caps.join(',')}] in ${store}; it is shown only once:\n`);
    process.stdout.write(`${made.key}\n`);
    return 0;
  },
};
