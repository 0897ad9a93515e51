// File paths in `security` are relative to the config file's directory (like segment key files).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { SecurityConfig } from '../config/schema.ts';
import { SluiceError } from '../errors.ts';

export function resolveSecurityPaths(s: SecurityConfig, baseDir: string | undefined): SecurityConfig {
  if (baseDir === undefined) return s;
  const r = (p: string | undefined) => (p === undefined ? undefined : path.resolve(baseDir, p));
  const opt = <K extends string>(k: K, p: string | undefined) => (p === undefined ? {} : ({ [k]: r(p) } as Record<K, string>));
  return {
    ...s,
    audit: { ...s.audit, path: r(s.audit.path) as string, adminPath: r(s.audit.adminPath) as string },
    apiKeys: { ...s.apiKeys, store: r(s.apiKeys.store) as string },
    jwt: { ...s.jwt, ...opt('jwksFile', s.jwt.jwksFile) },
    tls: {
      ...s.tls,
      ...opt('certFile', s.tls.certFile),
      ...opt('keyFile', s.tls.keyFile),
      clientCerts: { ...s.tls.clientCerts, ...opt('caFile', s.tls.clientCerts.caFile), ...opt('allowlistFile', s.tls.clientCerts.allowlistFile) },
    },
    evidence: { ...s.evidence, ...opt('signingKeyFile', s.evidence.signingKeyFile) },
    pii: { ...s.pii, ...(s.pii.vault === undefined ? {} : { vault: { path: r(s.pii.vault.path) as string, keyFile: r(s.pii.vault.keyFile) as string } }) },
    webhooks: { ...s.webhooks, endpoints: s.webhooks.endpoints.map((e) => ({ ...e, ...opt('secretFile', e.secretFile) })) },
  };
}

export function webhookSecret(e: SecurityConfig['webhooks']['endpoints'][number]): string {
  if (e.secret !== undefined) return e.secret;
  const file = e.secretFile as string;
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new SluiceError('SLUICE_ERR_CONFIG', `${file}: cannot read webhook secret (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (text.length < 32) throw new SluiceError('SLUICE_ERR_CONFIG', `${file}: webhook secret must be at least 32 characters`);
  return text;
}
