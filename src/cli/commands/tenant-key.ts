// `sluice tenant-key rotate|destroy|list`: operate on the per-tenant data keys that encrypt data
// at rest (docs/security.md, "Data at rest"). Rotate and destroy are recorded in the admin audit
// log; destroy is crypto-shredding and asks for --yes. What the keys covered (spooled tensors,
// evidence packs, the PII vault) needs no rewrite: without the keys it cannot be decrypted. The
// destroy entry counts the tenant's sealed spool files so the audit log says what went dark.
import { parseArgs } from 'node:util';
import path from 'node:path';
import { openTenantKeys } from '../../security/at-rest/open-tenant-keys.ts';
import { SluiceError } from '../../errors.ts';
import { Spool } from '../../training/spool.ts';
import { UsageError, type CliCommand } from '../command.ts';
import { auditedAdminAction, loadCliConfig } from '../security-context.ts';

function storeFrom(configFile: string | undefined) {
  const cfg = loadCliConfig(configFile);
  const store = openTenantKeys(cfg.security.atRest, configFile !== undefined ? path.dirname(configFile) : '.', true);
  if (store === undefined) throw new SluiceError('SLUICE_ERR_USAGE', 'security.atRest.kekFile is not set in the config: there are no tenant keys to manage');
  return { cfg, store };
}

function oneTenant(positionals: string[]): string {
  const t = positionals[0];
  if (t === undefined || positionals.length > 1) throw new UsageError('expected exactly one TENANT');
  return t;
}

export const tenantKeyRotateCommand: CliCommand = {
  name: 'tenant-key rotate',
  summary: "re-wrap a tenant's data keys under the current KEK, or (--new-key) start a new data key; old data is re-encrypted as it is read",
  usage: 'sluice tenant-key rotate TENANT [--new-key] [--config FILE]',
  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { 'new-key': { type: 'boolean' }, config: { type: 'string' } } });
    const tenant = oneTenant(positionals);
    const { cfg, store } = storeFrom(values.config);
    const newKey = values['new-key'] === true;
    const r = await auditedAdminAction(cfg.security.audit.adminPath, cfg.security.policyVersion, { action: 'tenant_key.rotate', tenant, detail: (x) => ({ new_key: newKey, ...(x ?? {}) }) }, () =>
      store.rotate(tenant, { newKey }),
    );
    process.stdout.write(`tenant ${tenant}: ${r.rewrapped} key version(s) re-wrapped; active version ${r.version}\n`);
    return 0;
  },
};

export const tenantKeyDestroyCommand: CliCommand = {
  name: 'tenant-key destroy',
  summary: "crypto-shred a tenant: delete its wrapped data keys so its data at rest can never be decrypted (needs --yes)",
  usage: 'sluice tenant-key destroy TENANT --yes [--reason TEXT] [--config FILE]',
  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { yes: { type: 'boolean' }, reason: { type: 'string' }, config: { type: 'string' } } });
    const tenant = oneTenant(positionals);
    if (values.yes !== true) throw new UsageError(`destroying ${tenant}'s keys makes its data at rest unreadable for good: add --yes`);
    const { cfg, store } = storeFrom(values.config);
    const n = await auditedAdminAction(
      cfg.security.audit.adminPath,
      cfg.security.policyVersion,
      {
        action: 'tenant_key.destroy',
        tenant,
        detail: (x) => ({ reason: values.reason ?? 'destroyed by operator', versions_destroyed: x?.versions ?? null, spooled_tensors_shredded: x?.spooled ?? null, covers: ['spooled tensors', 'evidence packs', 'pii vault'] }),
      },
      async () => {
        const spooled = await sealedSpoolFilesOf(cfg.training.spoolDir, tenant);
        return { versions: await store.destroy(tenant), spooled };
      },
    );
    process.stdout.write(`tenant ${tenant}: ${n.versions} data key version(s) destroyed; its data at rest (${n.spooled} spooled tensor file(s), evidence packs, PII vault) is unreadable\n`);
    return 0;
  },
};

export const tenantKeyListCommand: CliCommand = {
  name: 'tenant-key list',
  summary: 'list tenants with data keys: versions, states, KEK ids (never key material)',
  usage: 'sluice tenant-key list [--config FILE]',
  async run(args) {
    const { values } = parseArgs({ args, options: { config: { type: 'string' } } });
    const { store } = storeFrom(values.config);
    for (const t of await store.list()) {
      const v = t.versions.map((x) => `v${x.version} ${x.state} kek=${x.kekId}`).join(', ');
      process.stdout.write(`${t.tenant}\t${t.destroyedAt !== undefined ? `destroyed ${t.destroyedAt}` : v}\n`);
    }
    return 0;
  },
};

/** Spooled tensors (complete or partial) sealed for `tenant` in the node's spool. */
async function sealedSpoolFilesOf(dir: string, tenant: string): Promise<number> {
  try {
    return (await new Spool(dir).records()).filter((r) => r.sealed === true && r.tenant === tenant).length;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}
