// The engine's gRPC ingress end to end, in one engine process (engine_ingress_main): a client
// speaks gRPC to the ingress, which scans and gates the call, sends a CALL over a real
// inference link (handshake, AES-GCM frames) to the engine's egress, which calls the reference
// model server; the REPLY comes back as the gRPC answer. Other methods are relayed to a grpc-js
// server on a unix socket (the TypeScript server's place). Also: deadlines with x-request-id,
// bad requests, streams, and broken HTTP/2 (bad preface, DATA on stream 0, rapid reset,
// oversized message) after which the port keeps serving; h2load as an independent client.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { securitySchema } from '../../src/config/schema.ts';
import { compilePolicyTable } from '../../src/engine/policy-compiler.ts';
import { decodedServiceDefinition } from '../../src/kserve/grpc-service.ts';
import { encodeMessage, type ModelInferResponseMsg } from '../../src/kserve/proto.ts';
import { ModelServer } from '../../src/models/model-server.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { type CallFailure, KserveClient } from '../helpers/kserve-client.ts';
import { int32Of, int32Raw } from '../helpers/tensors.ts';

const BIN = path.resolve(process.env.SLUICE_ENGINE_MAIN_BIN ?? 'build/Release/engine_ingress_main');
const skip = existsSync(BIN) ? false : `${BIN} not built (npm run build:native)`;

let models: ModelServer;
let inner: grpc.Server;
let engine: ChildProcess;
let port = 0;
let client: KserveClient;
let dir = '';

before(async () => {
  if (skip !== false) return;
  models = new ModelServer({
    host: '127.0.0.1',
    port: 0,
    models: ['simple', 'identity'],
    dense: { k: 1, n: 1, seed: 1, maxBatch: 1 },
    maxMessageBytes: 64 << 20,
    maxDelayMs: 10_000,
    logger: createLogger('silent', 'test'),
  });
  const upstream = await models.start();
  dir = mkdtempSync(path.join(tmpdir(), 'sluice-engine-ingress-'));
  // The relay target: a grpc-js server on a unix socket answering ServerLive (TypeScript's role).
  inner = new grpc.Server();
  const def = decodedServiceDefinition();
  inner.addService(def, {
    ServerLive: (_call: unknown, cb: (err: null, res: object) => void) => cb(null, { live: true }),
  } as never);
  const sock = path.join(dir, 'grpc.sock');
  await new Promise<void>((resolve, reject) => inner.bindAsync(`unix:${sock}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  const policyFile = path.join(dir, 'policy.bin');
  writeFileSync(policyFile, compilePolicyTable({ generation: 1, security: securitySchema.parse({}), apiKeys: [], routes: [{ model: '*', peers: [1] }] }));
  engine = spawn(BIN, ['--upstream', `127.0.0.1:${upstream}`, '--policy', policyFile, '--relay', sock, '--timeout-ms', '5000'], { stdio: ['pipe', 'pipe', 'inherit'] });
  port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('engine did not print its port')), 20_000);
    createInterface({ input: engine.stdout! }).on('line', (line) => {
      const m = /^INGRESS_PORT=(\d+)$/.exec(line);
      if (m !== null) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    engine.once('exit', (code) => reject(new Error(`engine exited with ${code}`)));
  });
  client = new KserveClient(`127.0.0.1:${port}`);
});

after(async () => {
  if (skip !== false) return;
  client.close();
  engine.stdin!.end();
  await new Promise((r) => engine.once('exit', r));
  inner.forceShutdown();
  await models.stop(100);
  rmSync(dir, { recursive: true, force: true });
});

function simple(a: number[], b: number[], id = 'req-1'): object {
  return {
    modelName: 'simple',
    id,
    inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [1, 16] },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] },
    ],
    rawInputContents: [int32Raw(a), int32Raw(b)],
  };
}
const A = Array.from({ length: 16 }, (_, i) => i);
const B = Array.from({ length: 16 }, () => 1);

test('ModelInfer on the fast path: answer, model id and x-request-id in trailers', { skip, timeout: 30_000 }, async () => {
  const r = await client.infer(simple(A, B), { requestId: 'engine-req-1' });
  assert.equal(r.requestId, 'engine-req-1');
  const res = r.response as ModelInferResponseMsg;
  assert.equal(res.modelName, 'simple');
  assert.equal(res.id, 'req-1');
  const sums = int32Of(res.rawOutputContents![0]!);
  assert.deepEqual(sums, A.map((x) => x + 1));
  // Without x-request-id the engine makes one (a UUID).
  const r2 = await client.infer(simple(A, B));
  assert.match(r2.requestId ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test('a bad request is refused with the status and message of the TypeScript ingress', { skip, timeout: 30_000 }, async () => {
  const bad = { ...simple(A, B), rawInputContents: [int32Raw(A.slice(0, 15)), int32Raw(B)] };
  const err = (await client.infer(bad, { requestId: 'bad-1' }).then(
    () => assert.fail('accepted'),
    (e: CallFailure) => e,
  )) as CallFailure;
  assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
  assert.equal(err.details, "input 'INPUT0' (INT32 [1,16]) needs 64 bytes; raw_input_contents[0] has 60");
  assert.equal(err.requestId, 'bad-1');
});

test('grpc-timeout: DEADLINE_EXCEEDED with x-request-id, and the port keeps serving', { skip, timeout: 30_000 }, async () => {
  const slow = {
    modelName: 'identity',
    parameters: { delay_ms: { int64Param: 3000 } },
    inputs: [{ name: 'INPUT0', datatype: 'UINT8', shape: [4] }],
    rawInputContents: [Buffer.from([1, 2, 3, 4])],
  };
  const t0 = Date.now();
  const err = (await client.infer(slow, { requestId: 'slow-1', timeoutMs: 300 }).then(
    () => assert.fail('answered'),
    (e: CallFailure) => e,
  )) as CallFailure;
  assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
  assert.ok(Date.now() - t0 < 2500, 'the deadline ended the call, not the model');
  const r = await client.infer(simple(A, B));
  assert.equal(r.response.modelName, 'simple');
});

test('ModelStreamInfer: one answer per request, bad ones answered in-band', { skip, timeout: 30_000 }, async () => {
  const bad = { ...simple(A, B, 'bad'), inputs: [{ name: 'INPUT0', datatype: 'NOPE', shape: [1] }], rawInputContents: [Buffer.alloc(1)] };
  const out = await client.stream([simple(A, B, 's1'), bad, simple(B, A, 's3')]);
  assert.equal(out.length, 3);
  const ok = out.filter((m) => m.errorMessage === '');
  assert.deepEqual(ok.map((m) => m.inferResponse?.id).sort(), ['s1', 's3']);
  const failed = out.find((m) => m.errorMessage !== '')!;
  assert.match(failed.errorMessage, /unknown datatype 'NOPE'/);
  assert.equal(failed.inferResponse?.id, 'bad');
});

test('other methods are relayed to the TypeScript server on the unix socket', { skip, timeout: 30_000 }, async () => {
  const r = await client.call<{ live: boolean }>('ServerLive', {});
  assert.equal(r.response.live, true);
});

function rawConnection(bytes: Buffer): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    s.on('error', () => undefined);
    s.on('close', () => resolve(Buffer.concat(got)));
    s.write(bytes);
    setTimeout(() => s.destroy(), 3000);
  });
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

/** The GOAWAY error code in a server's bytes, or undefined. */
function goawayCode(bytes: Buffer): number | undefined {
  let p = 0;
  while (p + 9 <= bytes.length) {
    const len = bytes.readUIntBE(p, 3);
    if (bytes[p + 3] === 7 && p + 9 + 8 <= bytes.length) return bytes.readUInt32BE(p + 9 + 4);
    p += 9 + len;
  }
  return undefined;
}

test('broken HTTP/2: bad preface and DATA on stream 0 end the connection (GOAWAY), the port keeps serving', { skip, timeout: 30_000 }, async () => {
  const a = await rawConnection(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.ok(a.length >= 0); // closed, whatever it wrote
  const b = await rawConnection(Buffer.concat([PREFACE, SETTINGS, Buffer.from([0, 0, 1, 0, 0, 0, 0, 0, 0, 0x78])]));
  assert.equal(goawayCode(b), 1, 'GOAWAY(PROTOCOL_ERROR)');
  const r = await client.infer(simple(A, B));
  assert.equal(r.response.modelName, 'simple');
});

test('rapid reset: a client that opens and resets streams in a burst gets GOAWAY; others are served', { skip, timeout: 30_000 }, async () => {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
  session.on('error', () => undefined);
  for (let i = 0; i < 1500 && !session.destroyed && !session.closed; i++) {
    try {
      const s = session.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelInfer', 'content-type': 'application/grpc' });
      s.on('error', () => undefined);
      s.close(http2.constants.NGHTTP2_CANCEL);
    } catch {
      break;
    }
    if (i % 100 === 0) await new Promise((r) => setImmediate(r));
  }
  const code = await Promise.race([goaway, new Promise<number>((r) => setTimeout(() => r(-1), 5000))]);
  session.destroy();
  assert.equal(code, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  const r = await client.infer(simple(A, B));
  assert.equal(r.response.modelName, 'simple');
});

test('an oversized message is refused on its prefix with RESOURCE_EXHAUSTED', { skip, timeout: 30_000 }, async () => {
  const big = { modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'UINT8', shape: [5 << 20] }], rawInputContents: [Buffer.alloc(5 << 20)] };
  const big2 = new KserveClient(`127.0.0.1:${port}`);
  try {
    const err = (await big2.infer(big, { requestId: 'big-1' }).then(
      () => assert.fail('accepted'),
      (e: CallFailure) => e,
    )) as CallFailure;
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
  } finally {
    big2.close();
  }
});

test('h2load (the nghttp2 client) drives 200 unary calls; every one is answered', { skip: skip || (spawnSync('which', ['h2load']).status !== 0 ? 'h2load not installed' : false), timeout: 60_000 }, async () => {
  const msg = encodeMessage('ModelInferRequest', simple(A, B) as never);
  const body = Buffer.alloc(5 + msg.length);
  body.writeUInt32BE(msg.length, 1);
  msg.copy(body, 5);
  const file = path.join(dir, 'body.bin');
  writeFileSync(file, body);
  // Not spawnSync: the model server runs in this process and must keep answering.
  const h2load = spawn('h2load', ['-n', '200', '-c', '2', '-m', '4', '-d', file, '-H', 'content-type: application/grpc', '-H', 'te: trailers', `http://127.0.0.1:${port}/inference.GRPCInferenceService/ModelInfer`]);
  let out = '';
  h2load.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => h2load.once('exit', resolve));
  assert.equal(code, 0, out);
  assert.match(out, /requests: 200 total, 200 started, 200 done, 200 succeeded, 0 failed, 0 errored/);
  // h2load counts HTTP 200; every answer must also be a whole response (grpc-status 0 bodies).
  const bytes = /, [\d.]+\w*B \((\d+)\) data/.exec(out);
  assert.ok(bytes !== null && Number(bytes[1]) > 200 * 100, out);
});

/** The engine threads' C++ heap allocations so far (engine_ingress_main's "allocs"); -1 under ASan. */
function engineAllocs(): Promise<number> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: engine.stdout! });
    const timer = setTimeout(() => (lines.close(), reject(new Error('no ALLOCS answer'))), 5000);
    lines.on('line', (line) => {
      const m = /^ALLOCS=(-?\d+)$/.exec(line);
      if (m === null) return;
      clearTimeout(timer);
      lines.close();
      resolve(Number(m[1]));
    });
    engine.stdin!.write('allocs\n');
  });
}

test('a unary call through the whole engine (ingress, link both ways, egress) makes no C++ heap allocation once warm', { skip, timeout: 60_000 }, async () => {
  // Calls 8 at a time, as a client with a few in flight would: warm first (pools, buffers and
  // tables grow to what the load needs), then count. Before the pools (calls, timers, maps of
  // calls in flight, the egress's and the ingress's id strings, header lists) it was 14 per
  // call. What is left is rare, not per call: a new key epoch's AEAD context, a timer heap or
  // a table growing past its largest size so far.
  const round = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i += 8) await Promise.all(Array.from({ length: 8 }, (_, j) => client.infer(simple(A, B, `alloc-${i + j}`), { requestId: `alloc-rid-${i + j}-0123456789abcdef` })));
  };
  await round(400);
  const before = await engineAllocs();
  if (before < 0) return; // ASan build: its allocator is not replaced, nothing is counted
  const calls = 800;
  await round(calls);
  const perCall = ((await engineAllocs()) - before) / calls;
  assert.ok(perCall < 0.05, `C++ heap allocations per call: ${perCall}`);
});
