// Triton and KServe clients unchanged through a sluice pair (an egress with the reference models,
// an ingress with HTTP and gRPC, linked by the encrypted inference segment, each in its own
// process). gRPC is checked with an independent client: Python stubs generated at test time by
// protoc + grpc_python_plugin from proto/, run by Debian's python3 with python3-grpcio
// (scripts/install-deps.sh). REST, compression on the wire, and the small protocol details are
// checked here with node:http2, fetch and ws.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { closedPort, ROOT, type SluiceProcess, startSluice } from '../../scripts/sluice-child.ts';
import { encodeMessage, decodeMessage } from '../../src/kserve/proto.ts';

const PYTHON = '/usr/bin/python3';
const haveToolchain = existsSync(PYTHON) && spawnSync('protoc', ['--version']).status === 0 && existsSync('/usr/bin/grpc_python_plugin');

let egress: SluiceProcess;
let ingress: SluiceProcess;
let stubs: string;

before(async () => {
  const key = randomBytes(32).toString('hex');
  const modelsPort = await closedPort();
  egress = await startSluice(
    {
      node: { name: 'egress' },
      models: { listen: { host: '127.0.0.1', port: modelsPort }, dense: { k: 16, n: 4, seed: 7, maxBatch: 8 }, identity: { datatype: 'FP32', variants: ['INT32', 'BYTES'] } },
      segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: 0 } } },
      routes: [{ model: '*', upstreams: [{ address: `127.0.0.1:${modelsPort}` }] }],
    },
    { name: 'compat-egress' },
  );
  const [host, port] = egress.endpoints.segment!.split(':') as [string, string];
  ingress = await startSluice(
    {
      node: { name: 'ingress' },
      listeners: { http: { host: '127.0.0.1', port: 0 }, grpc: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key } },
      peers: [{ name: 'egress', segment: 'inference', host, port: Number(port) }],
      routes: [{ model: '*', peers: ['egress'] }],
      limits: { defaultTimeoutMs: 10_000 },
    },
    { name: 'compat-ingress' },
  );
  stubs = mkdtempSync(path.join(tmpdir(), 'sluice-pystubs-'));
});

after(async () => {
  await ingress?.stop();
  await egress?.stop();
  if (stubs !== undefined) rmSync(stubs, { recursive: true, force: true });
});

describe('an independent gRPC client (protoc-generated Python stubs)', () => {
  test('every Triton RPC through the pair, with gzip and deflate', () => {
    assert.ok(haveToolchain, 'python3-grpcio, protoc and grpc_python_plugin are needed (scripts/install-deps.sh installs them)');
    const proto = path.join(ROOT, 'proto');
    execFileSync('protoc', [`-I${proto}`, `--python_out=${stubs}`, `--grpc_python_out=${stubs}`, '--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin', 'grpc_service.proto', 'model_config.proto'], { timeout: 30_000 });
    const run = spawnSync(PYTHON, [path.join(ROOT, 'test', 'compat', 'triton_grpc_client.py'), stubs, ingress.endpoints.grpc!], { timeout: 60_000, encoding: 'utf8' });
    assert.equal(run.status, 0, `python client failed:\n${run.stdout}\n${run.stderr}`);
    const summary = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    assert.equal(summary.ok, true);
    assert.deepEqual(summary.index, ['dense', 'identity', 'identity_bytes', 'identity_int32', 'simple']);
    assert.deepEqual(summary.identity_metadata, ['FP32', [-1]]);
    assert.deepEqual(summary.stats_all, ['dense', 'identity', 'identity_bytes', 'identity_int32', 'simple']);
  });
});

interface RawAnswer {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  data: Buffer;
}

function grpcCall(pathName: string, body: Buffer, headers: Record<string, string> = {}, compressed = false): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${ingress.endpoints.grpc}`);
    session.on('error', reject);
    const req = session.request({ ':method': 'POST', ':path': pathName, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    const chunks: Buffer[] = [];
    let resHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => (resHeaders = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('close', () => {
      session.close();
      resolve({ headers: resHeaders, trailers, data: Buffer.concat(chunks) });
    });
    const prefix = Buffer.alloc(5);
    prefix[0] = compressed ? 1 : 0;
    prefix.writeUInt32BE(body.length, 1);
    req.end(Buffer.concat([prefix, body]));
  });
}

function simpleRequest(delayMs?: number): Buffer {
  const a = Buffer.alloc(64);
  for (let i = 0; i < 16; i++) a.writeInt32LE(i, i * 4);
  return encodeMessage('ModelInferRequest', {
    modelName: 'simple',
    inputs: ['INPUT0', 'INPUT1'].map((name) => ({ name, datatype: 'INT32', shape: [1, 16] })),
    rawInputContents: [a, a],
    ...(delayMs !== undefined ? { parameters: { delay_ms: { int64Param: delayMs } } } : {}),
  });
}

const INFER = '/inference.GRPCInferenceService/ModelInfer';
const statusOf = (r: RawAnswer): string | undefined => (r.trailers['grpc-status'] ?? r.headers['grpc-status']) as string | undefined;

describe('gRPC on the wire', () => {
  test('a gzip request gets a gzip answer when the client accepts it; identity when it does not', async () => {
    const z = zlib.gzipSync(simpleRequest());
    const r = await grpcCall(INFER, z, { 'grpc-encoding': 'gzip', 'grpc-accept-encoding': 'identity,gzip' }, true);
    assert.equal(statusOf(r), '0');
    assert.equal(r.headers['grpc-encoding'], 'gzip');
    assert.equal(r.data[0], 1, 'the answer is flagged compressed');
    const res = decodeMessage<{ modelName: string; rawOutputContents: Uint8Array[] }>('ModelInferResponse', zlib.gunzipSync(r.data.subarray(5)));
    assert.equal(res.modelName, 'simple');
    assert.equal(Buffer.from(res.rawOutputContents[0]!).readInt32LE(60), 30);

    const d = await grpcCall(INFER, zlib.deflateSync(simpleRequest()), { 'grpc-encoding': 'deflate' }, true);
    assert.equal(statusOf(d), '0');
    assert.equal(d.headers['grpc-encoding'], undefined, 'no grpc-accept-encoding from the client: an uncompressed answer');
    assert.equal(d.data[0], 0);
    assert.equal(d.headers['grpc-accept-encoding'], 'identity,deflate,gzip');

    const bad = await grpcCall(INFER, Buffer.from('not gzip at all'), { 'grpc-encoding': 'gzip' }, true);
    assert.equal(statusOf(bad), '13');
    const bomb = await grpcCall(INFER, zlib.gzipSync(Buffer.alloc(80 * 1024 * 1024)), { 'grpc-encoding': 'gzip' }, true);
    assert.equal(statusOf(bomb), '8', 'inflated past the message limit: RESOURCE_EXHAUSTED');
  });

  test('DEADLINE_EXCEEDED carries x-request-id and the client\'s own 5 ms', async () => {
    const r = await grpcCall(INFER, simpleRequest(2000), { 'grpc-timeout': '5m', 'x-request-id': 'deadline-5ms' });
    assert.equal(statusOf(r), '4');
    assert.equal(r.trailers['x-request-id'] ?? r.headers['x-request-id'], 'deadline-5ms');
    assert.match(decodeURIComponent(String(r.trailers['grpc-message'] ?? r.headers['grpc-message'])), /\b5 ms\b/);
  });
});

async function rest(method: string, pathName: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(`http://${ingress.endpoints.http}${pathName}`, { method, body, headers, signal: AbortSignal.timeout(20_000) });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

describe('REST', () => {
  test('config, stats, repository index', async () => {
    const cfg = await rest('GET', '/v2/models/simple/config');
    assert.equal(cfg.status, 200, cfg.text);
    const c = JSON.parse(cfg.text) as Record<string, unknown>;
    assert.equal(c.name, 'simple');
    assert.equal(c.max_batch_size, 0);
    assert.deepEqual(
      (c.input as { name: string; data_type: string; dims: number[] }[]).map((i) => [i.name, i.data_type, i.dims]),
      [
        ['INPUT0', 'TYPE_INT32', [1, 16]],
        ['INPUT1', 'TYPE_INT32', [1, 16]],
      ],
    );
    const dense = JSON.parse((await rest('GET', '/v2/models/dense/versions/1/config')).text) as { max_batch_size: number; input: { dims: number[] }[] };
    assert.equal(dense.max_batch_size, 8);
    assert.deepEqual(dense.input[0]!.dims, [16]);
    assert.equal((await rest('GET', '/v2/models/nope/config')).status, 404);

    const statsOf = async (): Promise<{ inference_count: number; inference_stats: { success: { count: number } } }> => {
      const s = await rest('GET', '/v2/models/identity_int32/stats');
      assert.equal(s.status, 200, s.text);
      const doc = JSON.parse(s.text) as { model_stats: { name: string; inference_count: number; inference_stats: { success: { count: number } } }[] };
      assert.equal(doc.model_stats.length, 1);
      assert.equal(doc.model_stats[0]!.name, 'identity_int32');
      return doc.model_stats[0]!;
    };
    const before = await statsOf();
    const infer = JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [3], data: [1, 2, 3] }] });
    for (let i = 0; i < 2; i++) assert.equal((await rest('POST', '/v2/models/identity_int32/infer', infer)).status, 200);
    const wrong = await rest('POST', '/v2/models/identity_int32/infer', JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1], data: [1] }] }));
    assert.equal(wrong.status, 400, 'a variant takes only its datatype');
    const afterStats = await statsOf();
    assert.equal(afterStats.inference_count, before.inference_count + 2);
    assert.equal(afterStats.inference_stats.success.count, before.inference_stats.success.count + 2);

    const all = JSON.parse((await rest('GET', '/v2/models/stats')).text) as { model_stats: { name: string }[] };
    assert.deepEqual(all.model_stats.map((m) => m.name), ['dense', 'identity', 'identity_bytes', 'identity_int32', 'simple']);

    const index = await rest('POST', '/v2/repository/index', JSON.stringify({ ready: true }));
    assert.equal(index.status, 200, index.text);
    const models = JSON.parse(index.text) as { name: string; version: string; state: string }[];
    assert.deepEqual(models.map((m) => [m.name, m.state]), [['dense', 'READY'], ['identity', 'READY'], ['identity_bytes', 'READY'], ['identity_int32', 'READY'], ['simple', 'READY']]);
    assert.equal((await rest('POST', '/v2/repository/index')).status, 200, 'an empty body is a request for everything');
    assert.equal((await rest('POST', '/v2/repository/index', '{"ready":"yes"}')).status, 400);
  });

  test('metadata names protocol datatypes and -1 for variable dimensions', async () => {
    const md = JSON.parse((await rest('GET', '/v2/models/identity')).text) as { inputs: { datatype: string; shape: number[] }[] };
    assert.deepEqual(md.inputs[0], { name: 'INPUT0', datatype: 'FP32', shape: [-1] });
    const dense = JSON.parse((await rest('GET', '/v2/models/dense')).text) as { inputs: { shape: number[] }[] };
    assert.deepEqual(dense.inputs[0]!.shape, [-1, 16]);
  });

  test('Content-Encoding gzip requests, Accept-Encoding gzip answers', async () => {
    const body = zlib.gzipSync(JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [4], data: [4, 3, 2, 1] }] }));
    // node:http so the answer's encoding can be seen (fetch would undo it).
    const { default: http } = await import('node:http');
    const [h, p] = ingress.endpoints.http!.split(':') as [string, string];
    const answer = await new Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
      const req = http.request({ host: h, port: Number(p), method: 'POST', path: '/v2/models/identity_int32/infer', headers: { 'content-encoding': 'gzip', 'accept-encoding': 'gzip', 'content-length': body.length } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-encoding'], 'gzip');
    const doc = JSON.parse(zlib.gunzipSync(answer.body).toString()) as { outputs: { data: number[] }[] };
    assert.deepEqual(doc.outputs[0]!.data, [4, 3, 2, 1]);

    const plain = await rest('POST', '/v2/models/identity_int32/infer', zlib.deflateSync('{"inputs":[{"name":"INPUT0","datatype":"INT32","shape":[1],"data":[9]}]}'), { 'content-encoding': 'deflate' });
    assert.equal(plain.status, 200, plain.text);
    const unsupported = await rest('POST', '/v2/models/identity_int32/infer', 'x', { 'content-encoding': 'br' });
    assert.equal(unsupported.status, 415);
    const corrupt = await rest('POST', '/v2/models/identity_int32/infer', 'not gzip', { 'content-encoding': 'gzip' });
    assert.equal(corrupt.status, 400);
    assert.equal(JSON.parse(corrupt.text).request_id, corrupt.headers.get('x-request-id'));
  });

  test('405 carries Allow; the WebSocket upgrade carries x-request-id', async () => {
    const r = await rest('DELETE', '/v2/models/simple/config');
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'GET');
    const p = await rest('GET', '/v2/models/simple/infer');
    assert.equal(p.status, 405);
    assert.equal(p.headers.get('allow'), 'POST');
    assert.equal((await rest('GET', '/v2/repository/index')).headers.get('allow'), 'POST');

    const ws = new WebSocket(`ws://${ingress.endpoints.http}/v2/models/identity/infer/stream`, { headers: { 'x-request-id': 'ws-upgrade-1' } });
    const upgradeId = await new Promise<string | undefined>((resolve, reject) => {
      ws.on('upgrade', (res) => resolve(res.headers['x-request-id'] as string | undefined));
      ws.on('error', reject);
    });
    ws.close();
    assert.equal(upgradeId, 'ws-upgrade-1');
  });
});
