// Which configs the engine's gRPC ingress serves, and the reason it gives for each it leaves to
// the TypeScript ingress (logged at warn by the node).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { engineIngressRefusal, type EngineIngressContext } from '../../src/engine/engine-ingress-choice.ts';

const KEY = '11'.repeat(32);

function ctx(extra: Record<string, unknown> = {}, over: Partial<EngineIngressContext> = {}): EngineIngressContext {
  const config = parseConfig(
    {
      listeners: { grpc: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key: KEY } },
      peers: [{ name: 'e', segment: 'inference', host: '127.0.0.1', port: 7470 }],
      routes: [{ model: '*', peers: ['e'] }],
      ...extra,
    },
    'test',
  );
  return { config, transport: 'tcp', engineEnv: undefined, tracing: false, accessLog: false, hooks: ['metrics'], ...over };
}

test('a plain TCP ingress config runs on the engine', () => {
  assert.equal(engineIngressRefusal(ctx()), null);
});

test('the access log and tracing stay on the engine (written from its per-call and span records)', () => {
  assert.equal(engineIngressRefusal(ctx({}, { accessLog: true, hooks: ['metrics', 'access-log'] })), null);
  assert.equal(engineIngressRefusal(ctx({}, { accessLog: true, tracing: true, hooks: ['metrics', 'access-log', 'tracing'] })), null);
  assert.equal(engineIngressRefusal(ctx({}, { tracing: true, hooks: ['metrics', 'tracing'] })), null);
});

test('each config the engine cannot serve names its reason', () => {
  assert.match(engineIngressRefusal(ctx({}, { engineEnv: '0' }))!, /SLUICE_ENGINE=0/);
  assert.equal(engineIngressRefusal(ctx({}, { transport: 'rdma' })), null, 'the engine serves rdma inference segments');
  assert.match(engineIngressRefusal(ctx({}, { hooks: ['metrics', 'test-gate'] }))!, /hooks.*test-gate/);
  // TLS (and mTLS) is terminated by the engine itself (engine-tls.ts).
  assert.equal(engineIngressRefusal(ctx({ security: { tls: { enabled: true, certFile: '/c.pem', keyFile: '/k.pem' } } })), null);
});

test('API keys, JWTs, rate limits and audit are served by the engine (its policy tables); the gate hook does not keep it off', () => {
  const security = {
    tenants: [{ name: 'acme', id: 7 }],
    apiKeys: { enabled: true, store: '/keys.json' },
    jwt: { enabled: true, jwksFile: '/jwks.json' },
    rateLimits: { enabled: true },
    audit: { enabled: true, path: '/audit.jsonl' },
  };
  assert.equal(engineIngressRefusal(ctx({ security }, { hooks: ['metrics', 'security'] })), null);
});

test('PII policies and threat detection stay on the engine: their tenants take the slow path, the detectors read its tap', () => {
  const security = {
    tenants: [{ name: 'acme', id: 7 }],
    apiKeys: { enabled: true, store: '/keys.json' },
    pii: { enabled: true, policies: [{ tenant: 'acme', mode: 'strict' }, { tenant: '*', mode: 'flag' }] },
    threats: { enabled: true },
  };
  assert.equal(engineIngressRefusal(ctx({ security }, { hooks: ['metrics', 'security', 'threat-profile'] })), null);
});
