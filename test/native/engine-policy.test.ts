// The engine's policy table and gates (native/engine/policy_table.h) against TypeScript's gate
// pipeline (src/security/gates.ts) on the same config and key store: for every combination of
// credential, tenant header, model and size, the engine allows what the gates allow and refuses
// what they refuse with the same gRPC status, SLUICE_ERR_* code and message; bearer tokens it
// has not seen go to TypeScript (outcome "ask"). The table comes from src/engine/policy-compiler.ts.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import fc from 'fast-check';
import { securitySchema } from '../../src/config/schema.ts';
import { compilePolicyTable } from '../../src/engine/policy-compiler.ts';
import { toInferenceError } from '../../src/kserve/inference-error.ts';
import { ApiKeySet, generateApiKey } from '../../src/security/api-keys.ts';
import type { ApiKeyWatcher } from '../../src/security/api-key-watcher.ts';
import { SecurityGates } from '../../src/security/gates.ts';
import { TenantRateLimiter } from '../../src/security/rate-limiter.ts';

const BIN = path.resolve(process.env.SLUICE_ENGINE_TESTS_BIN ?? 'build/Release/engine_ingress_tests');
const skip = existsSync(BIN) ? false : `${BIN} not built (npm run build:native)`;

interface EngineVerdict {
  outcome: 'allow' | 'refuse' | 'ask';
  tenantId: number;
  status?: number;
  code?: string;
  message?: string;
}

class EngineGates {
  private readonly child;
  private readonly pending: ((line: string) => void)[] = [];

  constructor(blob: Buffer) {
    this.child = spawn(BIN, ['--gate'], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.child.stdout }).on('line', (line) => this.pending.shift()?.(line));
    this.child.stdin.write(`${blob.toString('hex')}\n`);
  }

  private next(): Promise<string> {
    return new Promise((resolve) => this.pending.push(resolve));
  }

  async ready(): Promise<boolean> {
    return (JSON.parse(await this.next()) as { parse: boolean }).parse;
  }

  async check(q: { authorization?: string; apiKey?: string; tenant?: string; model: string; bytes: number; now: number; mono: number }): Promise<EngineVerdict> {
    const line = next(q);
    const reply = this.next();
    this.child.stdin.write(line);
    return JSON.parse(await reply) as EngineVerdict;
  }

  close(): void {
    this.child.stdin.end();
  }
}

function next(q: { authorization?: string; apiKey?: string; tenant?: string; model: string; bytes: number; now: number; mono: number }): string {
  return `${[q.authorization ?? '', q.apiKey ?? '', q.tenant ?? '', q.model, String(q.bytes), String(q.now), String(q.mono)].join('\t')}\n`;
}

const security = securitySchema.parse({
  tenants: [
    { name: 'acme', id: 7, models: ['simple', 'identity'] },
    { name: 'globex', id: 9 },
  ],
  apiKeys: { enabled: true },
  jwt: { enabled: true, jwksFile: '/nonexistent/jwks.json' },
  rateLimits: { enabled: true, default: { requestsPerSecond: 1e6, burst: 1e6, maxRequestBytes: 4096 } },
});
const acme = generateApiKey('acme', ['infer']);
const acmeTrain = generateApiKey('acme', ['train']);
const globex = generateApiKey('globex', ['infer', 'admin']);
const orphan = generateApiKey('initech', ['infer']);
const expiredRec = generateApiKey('acme', ['infer']);
const expired = { ...expiredRec, record: { ...expiredRec.record, expires_at: new Date(Date.now() - 1000).toISOString() } };
const unknown = generateApiKey('acme', ['infer']).key;
const records = [acme.record, acmeTrain.record, globex.record, orphan.record, expired.record];

function tsGates(): SecurityGates {
  const watcher = { keys: new ApiKeySet(records) } as unknown as ApiKeyWatcher;
  const jwt = { verify: async () => ({ ok: false, reason: 'invalid', message: 'not used' }) } as never;
  return new SecurityGates({ config: security, apiKeys: watcher, jwt, limiter: new TenantRateLimiter(security.rateLimits), recorder: { record: () => undefined } });
}

const credential = fc.constantFrom(
  { authorization: `Bearer ${acme.key}` },
  { apiKey: acme.key },
  { apiKey: acmeTrain.key },
  { authorization: `bearer   ${globex.key}  ` },
  { apiKey: orphan.key },
  { apiKey: expired.key },
  { apiKey: unknown },
  { authorization: 'Basic dXNlcjpwYXNz' },
  { authorization: 'Bearer' },
  {},
);

test('engine gates agree with src/security/gates.ts (status, code, message, tenant)', { skip, timeout: 120_000 }, async () => {
  const blob = compilePolicyTable({ generation: 1, security, apiKeys: records, routes: [{ model: '*', peers: [0] }] });
  const engine = new EngineGates(blob);
  assert.equal(await engine.ready(), true);
  const gates = tsGates();
  try {
    await fc.assert(
      fc.asyncProperty(
        credential,
        fc.constantFrom(undefined, 'acme', 'globex', 'nobody'),
        fc.constantFrom('simple', 'dense', 'identity'),
        fc.constantFrom(100, 5000),
        async (cred, tenant, model, bytes) => {
          const headers: Record<string, string | undefined> = {};
          if ('authorization' in cred) headers.authorization = cred.authorization;
          if ('apiKey' in cred) headers['x-api-key'] = cred.apiKey;
          if (tenant !== undefined) headers['x-sluice-tenant'] = tenant;
          let ts: { ok: true; tenantId: number } | { ok: false; status: number; code: string; message: string };
          try {
            const d = await gates.check({ requestId: 'r', action: 'infer', segment: 'inference', model, bytes, headers, protocol: 'grpc:ModelInfer' });
            ts = { ok: true, tenantId: d.tenant.id };
          } catch (err) {
            const e = toInferenceError(err);
            ts = { ok: false, status: e.grpcStatus, code: e.code, message: e.message };
          }
          const now = Date.now();
          const got = await engine.check({ ...cred, ...(tenant !== undefined ? { tenant } : {}), model, bytes, now, mono: now });
          const what = JSON.stringify({ cred, tenant, model, bytes, ts, got });
          if (ts.ok) {
            assert.equal(got.outcome, 'allow', what);
            assert.equal(got.tenantId, ts.tenantId, what);
          } else {
            assert.equal(got.outcome, 'refuse', what);
            assert.deepEqual({ status: got.status, code: got.code, message: got.message }, { status: ts.status, code: ts.code, message: ts.message }, what);
          }
        },
      ),
      { numRuns: 400 },
    );
    // A bearer token the engine has not seen (a JWT) is TypeScript's to verify.
    const jwtLike = await engine.check({ authorization: 'Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig', model: 'simple', bytes: 10, now: Date.now(), mono: 0 });
    assert.equal(jwtLike.outcome, 'ask');
  } finally {
    engine.close();
  }
});

test('engine gates: per-tenant token bucket refuses past the burst and refills', { skip, timeout: 30_000 }, async () => {
  const limited = securitySchema.parse({ ...security, rateLimits: { enabled: true, default: { requestsPerSecond: 2, burst: 2, maxRequestBytes: 4096 } } });
  const engine = new EngineGates(compilePolicyTable({ generation: 2, security: limited, apiKeys: records, routes: [] }));
  assert.equal(await engine.ready(), true);
  try {
    const q = { apiKey: acme.key, model: 'simple', bytes: 10, now: Date.now() };
    assert.equal((await engine.check({ ...q, mono: 0 })).outcome, 'allow');
    assert.equal((await engine.check({ ...q, mono: 1 })).outcome, 'allow');
    const third = await engine.check({ ...q, mono: 2 });
    assert.equal(third.outcome, 'refuse');
    assert.equal(third.code, 'SLUICE_ERR_RATE_LIMITED');
    assert.match(third.message ?? '', /^tenant "acme" is over its rate limit of 2\/s; retry in \d+ ms$/);
    assert.equal((await engine.check({ ...q, mono: 600 })).outcome, 'allow');
  } finally {
    engine.close();
  }
});

test('a policy blob cut short or with junk is refused by the engine, not trusted', { skip, timeout: 30_000 }, async () => {
  const blob = compilePolicyTable({ generation: 3, security, apiKeys: records, routes: [{ model: 'simple', peers: [0, 1] }] });
  for (const bad of [blob.subarray(0, blob.length - 1), Buffer.concat([blob, Buffer.from([0])]), Buffer.from('SLPT')]) {
    const engine = new EngineGates(bad);
    try {
      assert.equal(await engine.ready(), false);
    } finally {
      engine.close();
    }
  }
});
