import { parseArgs } from 'node:util';
import { readKeyStore } from '../../security/api-key-store.ts';
import type { ApiKeyRecord } from '../../security/api-keys.ts';
import { UsageError, type CliCommand } from '../command.ts';
import { loadCliConfig } from '../security-context.ts';

function keyState(r: Pick<ApiKeyRecord, 'expires_at' | 'revoked_reason'>, now: number): 'active' | 'retiring' | 'revoked' | 'expired' {
  if (r.expires_at === undefined) return 'active';
  const retired = r.revoked_reason !== undefined;
  if (Date.parse(r.expires_at) > now) return retired ? 'retiring' : 'active';
  return retired ? 'revoked' : 'expired';
}

export const keysListCommand: CliCommand = {
  name: 'keys list',
  summary: 'list API keys (ids, tenants, capabilities, state; never the keys)',
  usage: 'sluice keys list [--tenant T] [--json] [--store FILE] [--config FILE]',
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { tenant: { type: 'string' }, json: { type: 'boolean' }, store: { type: 'string' }, config: { type: 'string' } },
    });
    if (positionals.length > 0) throw new UsageError('unexpected arguments');
    const store = values.store ?? loadCliConfig(values.config).security.apiKeys.store;
    const now = Date.now();
    const rows = (await readKeyStore(store))
      .filter((r) => values.tenant === undefined || r.tenant === values.tenant)
      .map(({ hash: _hash, ...r }) => ({ ...r, state: keyState(r, now) }));
    if (values.json === true) {
      process.stdout.write(`${JSON.stringify(rows)}\n`);
      return 0;
    }
    const lines = rows.map((r) => [r.id, r.tenant, r.caps.join(','), r.state, r.created_at, r.expires_at ?? '-', r.label ?? ''].join('\t'));
    process.stdout.write(['id\ttenant\tcaps\tstate\tcreated\texpires\tlabel', ...lines].join('\n') + '\n');
    return 0;
  },
};
