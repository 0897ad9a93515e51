// The config as evidence: every secret value removed (keys, secrets, passwords, tokens), paths
// and settings kept, so an auditor sees the policy in force without being handed a credential.
const SECRET_NAME = /^(key|secret|password|passphrase|token|privateKey)$|Secret$|Password$|Token$/;

export const REDACTED = '[REDACTED]';

export function redactConfig(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactConfig);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_NAME.test(k) && v !== undefined && typeof v !== 'object' ? REDACTED : redactConfig(v);
  return out;
}
