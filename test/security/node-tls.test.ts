// TLS on a real node's client listeners: with mTLS (gRPC through sluice's TLS listener, HTTP
// through the TLS front to the uWS app on a unix socket) and without (uWS's native SSLApp).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { parseConfig } from '../../src/config/load.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { KserveClient, type CallFailure } from '../helpers/kserve-client.ts';
import { TestCa, type Issued } from '../helpers/pki.ts';
import { closedPort } from '../helpers/sluice-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dir = tempDir();
const logging = new Logging({ level: 'silent', node: 'tls-test' });
const allowlist = path.join(dir, 'agents.allow');
let ca: TestCa;
let server: Issued;
let agent: Issued;
let stranger: Issued;
let models: SluiceNode;

before(async () => {
  ca = new TestCa(dir, 'ca');
  server = ca.issue('sluice', { server: true });
  agent = ca.issue('agent-1');
  stranger = ca.issue('agent-2');
  writeFileSync(allowlist, `${agent.fingerprint}\n`);
  models = new SluiceNode({ config: parseConfig({ models: { listen: { host: '127.0.0.1', port: 0 } }, log: { level: 'silent' } }), logger: logging.component('models'), transports: defaultTransports });
  await models.start();
});
after(() => models.stop(0));

async function startNode(tls: object): Promise<SluiceNode> {
  const seg = await closedPort();
  const node = new SluiceNode({
    config: parseConfig({
      listeners: { http: { host: '127.0.0.1', port: 0 }, grpc: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key: randomBytes(32).toString('hex'), listen: { host: '127.0.0.1', port: seg } } },
      peers: [{ name: 'self', segment: 'inference', host: '127.0.0.1', port: seg }],
      routes: [{ model: '*', peers: ['self'], upstreams: [{ address: models.endpoints.models! }] }],
      log: { level: 'silent' },
      security: { tls: { enabled: true, certFile: server.cert, keyFile: server.key, ...tls } },
    }),
    logger: logging.component('node'),
    transports: defaultTransports,
  });
  await node.start();
  return node;
}

function httpsGet(hostPort: string, p: string, who: Issued | null): Promise<string> {
  const [host, port] = hostPort.split(':') as [string, string];
  return new Promise((resolve) => {
    const req = request(
      { host, port: Number(port), path: p, servername: 'localhost', ca: readFileSync(ca.cert), agent: false, ...(who !== null ? { key: readFileSync(who.key), cert: readFileSync(who.cert) } : {}) },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(`${res.statusCode} ${body}`));
      },
    );
    req.on('error', (e: Error & { code?: string }) => resolve(`error ${e.code ?? e.message}`));
    req.end();
  });
}

function grpcReady(address: string, who: Issued): Promise<number> {
  const creds = grpc.credentials.createSsl(readFileSync(ca.cert), readFileSync(who.key), readFileSync(who.cert));
  const client = new KserveClient(address.replace('127.0.0.1', 'localhost'), undefined, creds);
  return client
    .call('ModelReady', { name: 'simple' }, { timeoutMs: 5000 })
    .then(
      () => 0,
      (e: CallFailure) => e.code,
    )
    .finally(() => client.close());
}

test('mTLS node: allowlisted agents reach gRPC and HTTP (through the front); others are refused', async () => {
  const node = await startNode({ clientCerts: { mode: 'require', caFile: ca.cert, allowlistFile: allowlist } });
  try {
    assert.equal(await grpcReady(node.endpoints.grpc!, agent), 0);
    assert.equal(await grpcReady(node.endpoints.grpc!, stranger), grpc.status.UNAVAILABLE);
    assert.match(await httpsGet(node.endpoints.http!, '/v2/models/simple/ready', agent), /^200/);
    assert.match(await httpsGet(node.endpoints.http!, '/v2/health/live', stranger), /^error/);
    assert.match(await httpsGet(node.endpoints.http!, '/v2/health/live', null), /^error/);
  } finally {
    await node.stop(0);
  }
});

test('TLS without client certificates: HTTP on the native uWS SSLApp, gRPC on the TLS listener', async () => {
  const node = await startNode({});
  try {
    assert.match(await httpsGet(node.endpoints.http!, '/v2/health/live', null), /^200/);
    const client = new KserveClient(node.endpoints.grpc!.replace('127.0.0.1', 'localhost'), undefined, grpc.credentials.createSsl(readFileSync(ca.cert)));
    try {
      await client.call('ServerLive', {});
    } finally {
      client.close();
    }
    // Plaintext to a TLS port gets nothing.
    const plain = await fetch(`http://${node.endpoints.http}/v2/health/live`).then(
      (r) => r.status,
      () => 'refused',
    );
    assert.equal(plain, 'refused');
  } finally {
    await node.stop(0);
  }
});
