// The ingress hook seam (where authentication and metrics attach): a request hook runs before
// routing on every protocol and can refuse with its own status, or bind a tenant; a response
// hook sees every outcome. One in-process node (ingress + egress + models) over a real
// loopback segment link.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import type { IngressHook } from '../../src/ingress/hooks.ts';
import type { RequestContext, RequestOutcome } from '../../src/ingress/request-context.ts';
import { InferenceError, InferenceErrorCode } from '../../src/kserve/inference-error.ts';
import { GrpcStatus } from '../../src/kserve/status.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { closedPort } from '../../scripts/sluice-child.ts';
import { type CallFailure, KserveClient } from '../helpers/kserve-client.ts';

let node: SluiceNode;
let client: KserveClient;
const seen: { ctx: RequestContext; outcome: RequestOutcome }[] = [];

const gate: IngressHook = {
  name: 'test-gate',
  async onRequest(ctx) {
    await Promise.resolve();
    if (ctx.headers.authorization !== 'Bearer ok') {
      throw new InferenceError(InferenceErrorCode.BAD_REQUEST, 'missing or bad credentials', { grpcStatus: GrpcStatus.UNAUTHENTICATED, httpStatus: 401 });
    }
    ctx.tenant = 42;
  },
};
const recorder: IngressHook = {
  name: 'test-recorder',
  onResponse(ctx, outcome) {
    seen.push({ ctx, outcome });
  },
};

before(async () => {
  const seg = await closedPort();
  const models = await closedPort();
  const config = parseConfig({
    listeners: { http: { host: '127.0.0.1', port: 0 }, grpc: { host: '127.0.0.1', port: 0 } },
    segments: { inference: { transport: 'tcp', key: randomBytes(32).toString('hex'), listen: { host: '127.0.0.1', port: seg } } },
    peers: [{ name: 'self', segment: 'inference', host: '127.0.0.1', port: seg }],
    routes: [{ model: '*', peers: ['self'], upstreams: [{ address: `127.0.0.1:${models}` }] }],
    models: { listen: { host: '127.0.0.1', port: models }, models: ['identity'] },
  });
  node = new SluiceNode({ config, logger: createLogger('silent', 'test'), transports: defaultTransports, hooks: [gate, recorder] });
  await node.start();
  client = new KserveClient(node.endpoints.grpc!);
});

after(async () => {
  client.close();
  await node.stop(500);
});

const request = { modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1], contents: { intContents: [9] } }] };

test('a request hook refuses with its own status on gRPC and HTTP', async () => {
  const f = (await client.infer(request, { requestId: 'no-auth' }).catch((e: unknown) => e)) as CallFailure;
  assert.equal(f.code, GrpcStatus.UNAUTHENTICATED);
  assert.equal(f.details, 'missing or bad credentials');
  assert.equal(f.requestId, 'no-auth');
  const r = await fetch(`http://${node.endpoints.http}/v2/models/identity/infer`, {
    method: 'POST',
    body: JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1], data: [9] }] }),
  });
  assert.equal(r.status, 401);
  assert.equal(r.headers.get('content-type'), 'application/problem+json');
});

test('an accepted request carries the tenant the hook bound; the response hook sees every outcome', async () => {
  seen.length = 0;
  const ok = await client.call<{ outputs: { contents: { intContents: number[] } }[] }>('ModelInfer', request, {
    requestId: 'with-auth',
    metadata: { authorization: 'Bearer ok' },
  });
  assert.deepEqual(ok.response.outputs[0]!.contents.intContents, [9]);
  const r = await fetch(`http://${node.endpoints.http}/v2/models/nope/infer`, {
    method: 'POST',
    headers: { authorization: 'Bearer ok', 'x-request-id': 'http-nope' },
    body: JSON.stringify({ inputs: [] }),
  });
  assert.equal(r.status, 404);
  const byId = new Map(seen.map((s) => [s.ctx.requestId, s]));
  const a = byId.get('with-auth')!;
  assert.equal(a.ctx.tenant, 42);
  assert.equal(a.ctx.protocol, 'grpc');
  assert.equal(a.outcome.status, GrpcStatus.OK);
  assert.ok(a.outcome.responseBytes > 0);
  const bad = await fetch(`http://${node.endpoints.http}/v2/models/identity/infer`, {
    method: 'POST',
    headers: { authorization: 'Bearer ok', 'x-request-id': 'http-bad-json' },
    body: '{"inputs": [',
  });
  assert.equal(bad.status, 400);
  const refused = seen.find((s) => s.ctx.requestId === 'http-bad-json');
  assert.equal(refused?.outcome.error?.code, 'SLUICE_ERR_MALFORMED_JSON', 'refused requests reach the response hooks too');
  const b = byId.get('http-nope')!;
  assert.equal(b.ctx.protocol, 'http');
  assert.equal(b.outcome.status, GrpcStatus.NOT_FOUND);
  assert.equal(b.outcome.error?.code, 'SLUICE_ERR_MODEL_NOT_FOUND');
});
