// Credentials that are ambiguous are a malformed request, not a choice for the server to make:
// two Authorization headers, or an Authorization and an x-api-key naming different keys, get
// 400 (gRPC INVALID_ARGUMENT); a WebSocket upgrade without credentials gets 401 before any 101.
// Real node (ingress + egress + models in-process), raw sockets where a client library would
// merge or refuse the repeated header.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { parseConfig } from '../../src/config/load.ts';
import { framedMessage } from '../../src/ingress/grpc-deframer.ts';
import { encodeMessage } from '../../src/kserve/proto.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { createKey } from '../../src/security/api-key-store.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { KserveClient, type CallFailure } from '../helpers/kserve-client.ts';
import { closedPort } from '../helpers/sluice-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { int32Raw } from '../helpers/tensors.ts';

const dir = tempDir();
const keyStore = path.join(dir, 'keys.json');
const logging = new Logging({ level: 'silent', node: 'cred-test' });
let node: SluiceNode;
let models: SluiceNode;
let httpPort: number;
let grpcAddr: string;
let keyA: string;
let keyB: string;

before(async () => {
  keyA = (await createKey(keyStore, { tenant: 'acme', caps: ['infer'] })).key;
  keyB = (await createKey(keyStore, { tenant: 'acme', caps: ['infer'] })).key;
  models = new SluiceNode({ config: parseConfig({ models: { listen: { host: '127.0.0.1', port: 0 } }, log: { level: 'silent' } }), logger: logging.component('models'), transports: defaultTransports });
  await models.start();
  const seg = await closedPort();
  node = new SluiceNode({
    config: parseConfig({
      node: { name: 'cred' },
      listeners: { http: { host: '127.0.0.1', port: 0 }, grpc: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key: randomBytes(32).toString('hex'), listen: { host: '127.0.0.1', port: seg } } },
      peers: [{ name: 'self', segment: 'inference', host: '127.0.0.1', port: seg }],
      routes: [{ model: '*', peers: ['self'], upstreams: [{ address: models.endpoints.models! }] }],
      log: { level: 'silent' },
      security: { tenants: [{ name: 'acme', id: 17 }], apiKeys: { enabled: true, store: keyStore } },
    }),
    logger: logging.component('node'),
    transports: defaultTransports,
  });
  await node.start();
  httpPort = Number(node.endpoints.http!.split(':').pop());
  grpcAddr = node.endpoints.grpc!;
});

after(async () => {
  await node?.stop(0);
  await models?.stop(0);
});

const simpleBody = JSON.stringify({
  inputs: [
    { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, (_, i) => i) },
    { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, () => 1) },
  ],
});

/** Sends one raw HTTP/1.1 request (header lines as given, repeats kept) and returns the response head and body. */
function rawHttp(lines: string[], body = ''): Promise<{ status: number; head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(httpPort, '127.0.0.1');
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer; got ${JSON.stringify(buf)}`));
    }, 10_000);
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.slice(0, end);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
      const len = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (status === 101 || buf.length - end - 4 >= len) {
        clearTimeout(timer);
        s.destroy();
        resolve({ status, head, body: buf.slice(end + 4, end + 4 + len) });
      }
    });
    s.on('error', reject);
    s.write(`${lines.join('\r\n')}\r\n${body !== '' ? `content-length: ${Buffer.byteLength(body)}\r\n` : ''}\r\n${body}`);
  });
}

const inferLines = (extra: string[]) => ['POST /v2/models/simple/infer HTTP/1.1', 'host: 127.0.0.1', 'content-type: application/json', 'x-request-id: dup-1', ...extra];

test('HTTP: two Authorization headers get a 400 problem with the request id', async () => {
  const r = await rawHttp(inferLines([`authorization: Bearer ${keyA}`, `authorization: Bearer ${keyB}`]), simpleBody);
  assert.equal(r.status, 400, r.body);
  assert.match(r.head, /content-type: application\/problem\+json/i);
  const problem = JSON.parse(r.body) as { request_id: string; detail: string };
  assert.equal(problem.request_id, 'dup-1');
  assert.match(problem.detail, /more than one Authorization header/);
  // Even the same key twice is refused: the header is not a list.
  assert.equal((await rawHttp(inferLines([`authorization: Bearer ${keyA}`, `authorization: Bearer ${keyA}`]), simpleBody)).status, 400);
});

test('HTTP: Authorization and x-api-key naming different keys get 400; the same key in both passes', async () => {
  const r = await rawHttp(inferLines([`authorization: Bearer ${keyA}`, `x-api-key: ${keyB}`]), simpleBody);
  assert.equal(r.status, 400, r.body);
  assert.match((JSON.parse(r.body) as { detail: string }).detail, /name different credentials/);
  assert.equal((await rawHttp(inferLines([`x-api-key: ${keyA}`, `x-api-key: ${keyB}`]), simpleBody)).status, 400);
  const same = await rawHttp(inferLines([`authorization: Bearer ${keyA}`, `x-api-key: ${keyA}`]), simpleBody);
  assert.equal(same.status, 200, same.body);
});

const inferRequest = {
  modelName: 'simple',
  inputs: [
    { name: 'INPUT0', datatype: 'INT32', shape: [1, 16] },
    { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] },
  ],
  rawInputContents: [int32Raw(Array.from({ length: 16 }, (_, i) => i)), int32Raw(Array.from({ length: 16 }, () => 2))],
};

test('gRPC: Authorization and x-api-key naming different keys get INVALID_ARGUMENT', async () => {
  const client = new KserveClient(grpcAddr);
  try {
    const bad = (await client.infer(inferRequest, { requestId: 'g-dup', metadata: { authorization: `Bearer ${keyA}`, 'x-api-key': keyB } }).catch((e: CallFailure) => e)) as CallFailure;
    assert.deepEqual([bad.code, bad.requestId], [grpc.status.INVALID_ARGUMENT, 'g-dup']);
    assert.match(bad.details, /name different credentials/);
    const ok = await client.infer(inferRequest, { metadata: { authorization: `Bearer ${keyA}` } });
    assert.ok(ok.requestId !== undefined);
  } finally {
    client.close();
  }
});

test('gRPC: two Authorization headers get INVALID_ARGUMENT (nghttp sends the repeat; node:http2 clients cannot)', async (t) => {
  if (spawnSync('nghttp', ['--version']).status !== 0) {
    t.skip('nghttp (Debian nghttp2-client) is not installed');
    return;
  }
  const body = path.join(dir, 'infer.grpc');
  writeFileSync(body, framedMessage(encodeMessage('ModelInferRequest', inferRequest)));
  // Asynchronously: the server answering it runs in this process.
  const run = async (auth: string[]) =>
    (
      await promisify(execFile)(
        'nghttp',
        ['-nv', '-t', '10', '-H', ':method: POST', '-H', 'content-type: application/grpc', '-H', 'te: trailers', '-H', 'x-request-id: g-two', ...auth.flatMap((a) => ['-H', `authorization: Bearer ${a}`]), '-d', body, `http://${grpcAddr}/inference.GRPCInferenceService/ModelInfer`],
        { encoding: 'utf8', timeout: 20_000 },
      )
    ).stdout;
  const two = await run([keyA, keyB]);
  assert.match(two, /recv \(stream_id=\d+\) grpc-status: 3\b/, two);
  assert.match(two, /grpc-message: more than one Authorization header/);
  assert.match(two, /x-request-id: g-two/);
  assert.match(await run([keyA]), /recv \(stream_id=\d+\) grpc-status: 0\b/);
});

const upgradeLines = (extra: string[]) => [
  'GET /v2/models/simple/infer/stream HTTP/1.1',
  'host: 127.0.0.1',
  'upgrade: websocket',
  'connection: Upgrade',
  `sec-websocket-key: ${randomBytes(16).toString('base64')}`,
  'sec-websocket-version: 13',
  'x-request-id: ws-1',
  ...extra,
];

test('WebSocket: an upgrade without credentials gets 401 (a problem, no 101); with a key it upgrades', async () => {
  const none = await rawHttp(upgradeLines([]));
  assert.equal(none.status, 401, none.head);
  assert.match(none.head, /www-authenticate: Bearer/i);
  assert.equal((JSON.parse(none.body) as { request_id: string }).request_id, 'ws-1');
  const two = await rawHttp(upgradeLines([`authorization: Bearer ${keyA}`, `x-api-key: ${keyB}`]));
  assert.equal(two.status, 400, two.head);
  const ok = await rawHttp(upgradeLines([`authorization: Bearer ${keyA}`]));
  assert.equal(ok.status, 101, ok.head);
});
