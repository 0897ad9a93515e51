import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../../audit/atomic-file.ts';
import { sha256Hex } from '../../audit/entry.ts';
import type { SluiceConfig } from '../../config/schema.ts';
import { FRAMEWORKS, isFramework } from '../../evidence/frameworks.ts';
import { loadSigningKey, loadVerifyKey } from '../../evidence/jws.ts';
import { buildEvidencePack } from '../../evidence/pack.ts';
import { isSealedPack, packTar, sealPack } from '../../evidence/sealed-pack.ts';
import { peekHeader } from '../../security/at-rest/at-rest-format.ts';
import { NODE_OWNER } from '../../security/at-rest/data-owner.ts';
import { openTenantKeys } from '../../security/at-rest/open-tenant-keys.ts';
import { tenantNameSchema } from '../../config/schema.ts';
import path from 'node:path';
import { verifyEvidencePack } from '../../evidence/verify-pack.ts';
import { UsageError, type CliCommand } from '../command.ts';
import { auditedAdminAction, loadCliConfig } from '../security-context.ts';

function parseTime(v: string | undefined, flag: string): Date {
  if (v === undefined) throw new UsageError(`${flag} ISO8601 is required`);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new UsageError(`${flag}: ${JSON.stringify(v)} is not an ISO 8601 time`);
  return new Date(t);
}

/** The node's metrics, scraped from its metrics listener when it runs (2 s at most). */
async function scrapeMetrics(cfg: SluiceConfig): Promise<string> {
  const l = cfg.listeners.metrics;
  if (l === undefined) return '# no metrics listener is configured: no snapshot\n';
  try {
    const res = await fetch(`http://${l.host.includes(':') ? `[${l.host}]` : l.host}:${l.port}/metrics`, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) return `# metrics listener answered ${res.status}: no snapshot\n`;
    return await res.text();
  } catch (err) {
    return `# metrics listener ${l.host}:${l.port} unreachable (${(err as Error).message}): no snapshot\n`;
  }
}

export const evidenceExportCommand: CliCommand = {
  name: 'evidence export',
  summary: 'write a signed evidence pack (tar) of the audit log for a time range and framework',
  usage: `sluice evidence export --config FILE --from ISO8601 --to ISO8601 [--framework ${FRAMEWORKS.join('|')}] [--tenant TENANT] --key SIGNING_KEY.pem --out PACK`,
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { config: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, framework: { type: 'string' }, tenant: { type: 'string' }, key: { type: 'string' }, out: { type: 'string' } },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
    const from = parseTime(values.from, '--from');
    const to = parseTime(values.to, '--to');
    if (to < from) throw new UsageError('--to is before --from');
    const fw = values.framework ?? null;
    if (fw !== null && !isFramework(fw)) throw new UsageError(`--framework must be one of ${FRAMEWORKS.join(', ')}`);
    if (values.key === undefined) throw new UsageError('--key SIGNING_KEY.pem is required');
    if (values.out === undefined) throw new UsageError('--out PACK is required');
    const out = values.out;
    const tenant = values.tenant;
    if (tenant !== undefined && !tenantNameSchema.safeParse(tenant).success) throw new UsageError(`--tenant: ${JSON.stringify(tenant)} is not a tenant name`);
    const cfg = loadCliConfig(values.config);
    // security.atRest: the pack stays on this node encrypted under the tenant's (or the node's) key.
    const keys = keysOf(cfg, values.config);
    const signingKey = loadSigningKey(values.key);
    const metricsText = await scrapeMetrics(cfg);
    const made = await auditedAdminAction(
      cfg.security.audit.adminPath,
      cfg.security.policyVersion,
      {
        action: 'evidence.export',
        tenant: null,
        detail: (r) => ({ from: from.toISOString(), to: to.toISOString(), framework: fw, tenant: tenant ?? null, out, entries: r?.manifest.entries.count ?? null, sha256: r === null ? null : sha256Hex(r.tar), sealed_at_rest: keys !== undefined }),
      },
      async () => {
        const pack = await buildEvidencePack({ config: cfg, from, to, framework: fw, ...(tenant !== undefined ? { tenant } : {}), signingKey, metricsText });
        await writeFileAtomic(out, keys !== undefined ? await sealPack(keys, pack.tar, tenant) : pack.tar, 0o600);
        return pack;
      },
    );
    const m = made.manifest;
    process.stdout.write(`${out}: ${m.entries.count} entries, ${m.checkpoints.length} checkpoints${m.entries.unsealed_excluded > 0 ? `, ${m.entries.unsealed_excluded} newer entries not yet under a checkpoint left out` : ''}${keys !== undefined ? `; encrypted at rest for ${tenant ?? 'the node'} (sluice evidence open gives the tar)` : ''}\n`);
    return 0;
  },
};

export const evidenceVerifyCommand: CliCommand = {
  name: 'evidence verify',
  summary: 'check an evidence pack offline: signature, part hashes, entries, inclusion proofs (and checkpoints against the live log)',
  usage: 'sluice evidence verify PACK --key PUBLIC.pem [--audit LOG] [--json] [--config FILE (a pack encrypted at rest)]',
  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { key: { type: 'string' }, audit: { type: 'string' }, json: { type: 'boolean' }, config: { type: 'string' } } });
    const file = positionals[0];
    if (file === undefined || positionals.length > 1) throw new UsageError('expected exactly one PACK');
    if (values.key === undefined) throw new UsageError('--key PUBLIC.pem is required');
    const key = loadVerifyKey(values.key);
    const bytes = await readFile(file);
    const tar = await packTar(bytes, isSealedPack(bytes) ? keysOf(loadCliConfig(values.config), values.config) : undefined);
    const v = await verifyEvidencePack(tar, key, values.audit === undefined ? {} : { auditLog: values.audit });
    if (values.json === true) process.stdout.write(`${JSON.stringify(v)}\n`);
    else if (v.ok) process.stdout.write(`${file}: ok, ${v.entries} entries under ${v.checkpoints} checkpoints, signed at ${new Date((v.signedAt ?? 0) * 1000).toISOString()}${values.audit === undefined ? '' : `, checkpoints present in ${values.audit}`}\n`);
    else process.stdout.write(`${file}: FAILED: ${v.problem!.part}: ${v.problem!.message}\n`);
    return v.ok ? 0 : 1;
  },
};

/** The tenant key store when security.atRest is on (paths relative to the config file). */
function keysOf(cfg: SluiceConfig, configFile: string | undefined) {
  const file = configFile ?? process.env.SLUICE_CONFIG;
  return openTenantKeys(cfg.security.atRest, file !== undefined && file !== '' ? path.dirname(file) : '.');
}

export const evidenceOpenCommand: CliCommand = {
  name: 'evidence open',
  summary: 'decrypt an evidence pack kept encrypted at rest into the plain signed tar (to hand to an auditor); audited',
  usage: 'sluice evidence open PACK --out TAR [--config FILE]',
  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { out: { type: 'string' }, config: { type: 'string' } } });
    const file = positionals[0];
    if (file === undefined || positionals.length > 1) throw new UsageError('expected exactly one PACK');
    if (values.out === undefined) throw new UsageError('--out TAR is required');
    const out = values.out;
    const cfg = loadCliConfig(values.config);
    const bytes = await readFile(file);
    if (!isSealedPack(bytes)) throw new UsageError(`${file} is not encrypted at rest: it is the tar already`);
    const tenant = peekOwner(bytes);
    await auditedAdminAction(cfg.security.audit.adminPath, cfg.security.policyVersion, { action: 'evidence.open', tenant, detail: () => ({ pack: file, out }) }, async () => {
      await writeFileAtomic(out, await packTar(bytes, keysOf(cfg, values.config)), 0o600);
      return null;
    });
    process.stdout.write(`${out}: the signed tar of ${file}\n`);
    return 0;
  },
};

/** The tenant a sealed pack belongs to (null: the node's own). */
function peekOwner(bytes: Buffer): string | null {
  const t = peekHeader(bytes).tenant;
  return t === NODE_OWNER ? null : t;
}
