// Shared plumbing of the security CLI commands: which config, key store and admin audit log.
import { randomUUID } from 'node:crypto';
import { userInfo } from 'node:os';
import path from 'node:path';
import { AuditLog } from '../audit/log.ts';
import type { AuditOutcome } from '../audit/entry.ts';
import { loadConfigFile, parseConfig } from '../config/load.ts';
import type { SluiceConfig } from '../config/schema.ts';
import { resolveSecurityPaths } from '../security/security-paths.ts';

/** --config FILE, else $SLUICE_CONFIG, else the defaults; security paths resolved as the server does. */
export function loadCliConfig(file: string | undefined): SluiceConfig {
  const f = file ?? process.env.SLUICE_CONFIG;
  if (f === undefined || f === '') return parseConfig({});
  const cfg = loadConfigFile(f);
  return { ...cfg, security: resolveSecurityPaths(cfg.security, path.dirname(path.resolve(f))) };
}

export function cliActor(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (containers): keep "unknown"
  }
  return `cli:${user}`;
}

/**
 * Opens the admin audit log (the server holds the main one), runs `action`, and records its
 * outcome. The action's result is returned only after its entry is durable.
 */
export async function auditedAdminAction<T>(
  auditPath: string,
  policyVersion: string,
  what: { action: string; tenant: string | null; reason?: string; detail: (r: T | null) => Record<string, unknown> },
  action: () => Promise<T>,
): Promise<T> {
  const log = await AuditLog.open({ path: auditPath, policyVersion, lockWaitMs: 5000, checkpointSeconds: 0 });
  const requestId = randomUUID();
  const reason = what.reason === undefined ? {} : { reason: what.reason };
  try {
    let result: T;
    try {
      result = await action();
    } catch (err) {
      const outcome: AuditOutcome = (err as { code?: string }).code === 'SLUICE_ERR_SCOPE_WIDENING' ? 'denied' : 'failure';
      await log.append({ tenant: what.tenant, requestId, actor: cliActor(), action: what.action, outcome, ...reason, detail: { ...what.detail(null), error: (err as Error).message } });
      throw err;
    }
    await log.append({ tenant: what.tenant, requestId, actor: cliActor(), action: what.action, outcome: 'success', ...reason, detail: what.detail(result) });
    return result;
  } finally {
    await log.close();
  }
}
