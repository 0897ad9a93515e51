import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../../audit/atomic-file.ts';
import { sha256Hex } from '../../audit/entry.ts';
import type { SluiceConfig } from '../../config/schema.ts';
import { FRAMEWORKS, isFramework } from '../../evidence/frameworks.ts';
import { loadSigningKey, loadVerifyKey } from '../../evidence/jws.ts';
import { buildEvidencePack } from '../../evidence/pack.ts';
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
  usage: `sluice evidence export --config FILE --from ISO8601 --to ISO8601 [--framework ${FRAMEWORKS.join('|')}] --key SIGNING_KEY.pem --out PACK`,
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { config: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, framework: { type: 'string' }, key: { type: 'string' }, out: { type: 'string' } },
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
    const cfg = loadCliConfig(values.config);
    const signingKey = loadSigningKey(values.key);
    const metricsText = await scrapeMetrics(cfg);
    const made = await auditedAdminAction(
      cfg.security.audit.adminPath,
      cfg.security.policyVersion,
      {
        action: 'evidence.export',
        tenant: null,
        detail: (r) => ({ from: from.toISOString(), to: to.toISOString(), framework: fw, out, entries: r?.manifest.entries.count ?? null, sha256: r === null ? null : sha256Hex(r.tar) }),
      },
      async () => {
        const pack = await buildEvidencePack({ config: cfg, from, to, framework: fw, signingKey, metricsText });
        await writeFileAtomic(out, pack.tar, 0o600);
        return pack;
      },
    );
    const m = made.manifest;
    process.stdout.write(`${out}: ${m.entries.count} entries, ${m.checkpoints.length} checkpoints${m.entries.unsealed_excluded > 0 ? `, ${m.entries.unsealed_excluded} newer entries not yet under a checkpoint left out` : ''}\n`);
    return 0;
  },
};

export const evidenceVerifyCommand: CliCommand = {
  name: 'evidence verify',
  summary: 'check an evidence pack offline: signature, part hashes, entries, inclusion proofs (and checkpoints against the live log)',
  usage: 'sluice evidence verify PACK --key PUBLIC.pem [--audit LOG] [--json]',
  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { key: { type: 'string' }, audit: { type: 'string' }, json: { type: 'boolean' } } });
    const file = positionals[0];
    if (file === undefined || positionals.length > 1) throw new UsageError('expected exactly one PACK');
    if (values.key === undefined) throw new UsageError('--key PUBLIC.pem is required');
    const key = loadVerifyKey(values.key);
    const v = await verifyEvidencePack(await readFile(file), key, values.audit === undefined ? {} : { auditLog: values.audit });
    if (values.json === true) process.stdout.write(`${JSON.stringify(v)}\n`);
    else if (v.ok) process.stdout.write(`${file}: ok, ${v.entries} entries under ${v.checkpoints} checkpoints, signed at ${new Date((v.signedAt ?? 0) * 1000).toISOString()}${values.audit === undefined ? '' : `, checkpoints present in ${values.audit}`}\n`);
    else process.stdout.write(`${file}: FAILED: ${v.problem!.part}: ${v.problem!.message}\n`);
    return v.ok ? 0 : 1;
  },
};
