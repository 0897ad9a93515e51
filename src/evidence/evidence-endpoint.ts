// POST /v2/sluice/evidence on the HTTP listener: the same pack as `sluice evidence export`,
// for a caller holding the `admin` capability (checked by the normal gates, audited like every
// admin call). Body: {"from": ISO8601, "to": ISO8601, "framework"?: soc2|eu-ai-act-art10|...}.
// A checkpoint is sealed first so every entry up to now can be proven.
import type { KeyObject } from 'node:crypto';
import type { AdminRoute } from '../ingress/admin-route.ts';
import type { SluiceConfig } from '../config/schema.ts';
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';
import type { SecurityRuntime } from '../security/security-runtime.ts';
import { FRAMEWORKS, isFramework, type Framework } from './frameworks.ts';
import { loadSigningKey } from './jws.ts';
import { buildEvidencePack, EvidenceError } from './pack.ts';

export const EVIDENCE_PATH = '/v2/sluice/evidence';

function bad(message: string): InferenceError {
  return new InferenceError(InferenceErrorCode.BAD_REQUEST, message);
}

function parseRequest(body: Buffer): { from: Date; to: Date; framework: Framework | null } {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8') || '{}');
  } catch {
    throw bad('the body is not JSON: expected {"from": ISO8601, "to": ISO8601, "framework"?: ...}');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('the body must be a JSON object');
  const d = doc as Record<string, unknown>;
  const time = (k: 'from' | 'to'): Date => {
    const v = d[k];
    if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) throw bad(`"${k}" must be an ISO 8601 time`);
    return new Date(Date.parse(v));
  };
  const from = time('from');
  const to = time('to');
  if (to < from) throw bad('"to" is before "from"');
  const fw = d.framework ?? null;
  if (fw !== null && (typeof fw !== 'string' || !isFramework(fw))) throw bad(`"framework" must be one of ${FRAMEWORKS.join(', ')}`);
  return { from, to, framework: fw as Framework | null };
}

export function evidenceRoute(opts: { config: SluiceConfig; security: SecurityRuntime; metricsText: () => Promise<string> }): AdminRoute {
  const sec = opts.security;
  const keyFile = sec.config.evidence.signingKeyFile;
  let key: KeyObject | null = null;
  return {
    method: 'post',
    path: EVIDENCE_PATH,
    async handle(req) {
      const d = await sec.gates.check({ requestId: req.requestId, action: 'admin', segment: null, model: null, bytes: req.body.length, headers: req.headers, protocol: 'http:evidence' });
      if (d.durable !== undefined) await d.durable;
      const r = parseRequest(req.body);
      if (keyFile === undefined) throw new InferenceError(InferenceErrorCode.PEER_UNAVAILABLE, 'no evidence signing key is configured (security.evidence.signingKeyFile)');
      if (sec.audit === null) throw new InferenceError(InferenceErrorCode.PEER_UNAVAILABLE, 'the audit log is off: there is no evidence to export');
      key ??= loadSigningKey(keyFile);
      await sec.audit.checkpoint();
      let pack;
      try {
        pack = await buildEvidencePack({ config: { ...opts.config, security: sec.config }, ...r, signingKey: key, metricsText: await opts.metricsText() });
      } catch (err) {
        if (err instanceof EvidenceError) throw new InferenceError(InferenceErrorCode.INTERNAL, err.message);
        throw err;
      }
      await sec.record({
        type: 'evidence.export',
        tenant: d.tenant.name,
        requestId: req.requestId,
        actor: d.principal.actor,
        outcome: 'success',
        detail: { from: r.from.toISOString(), to: r.to.toISOString(), framework: r.framework, entries: pack.manifest.entries.count, via: 'http' },
      });
      return { contentType: 'application/x-tar', body: pack.tar, headers: { 'content-disposition': 'attachment; filename="sluice-evidence.tar"' } };
    },
  };
}
