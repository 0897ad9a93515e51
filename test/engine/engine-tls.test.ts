// TLS terminated by the native engine on listeners.grpc (security.tls): real TLS on loopback with
// a throwaway PKI, a real node whose gRPC port the engine serves. TLS 1.3 ModelInfer on the fast
// path; the version floor; ALPN h2 only; mTLS (no certificate, an unknown one, an allowlisted one,
// revocation of a live connection); half handshakes closed at handshakeTimeoutMs and counted;
// garbage before the ClientHello closing that one connection while the engine keeps serving;
// certificate rotation on SIGHUP.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { parseConfig } from '../../src/config/load.ts';
import type { EngineIngress } from '../../src/engine/engine-ingress.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { KserveClient, type CallFailure } from '../helpers/kserve-client.ts';
import { TestCa, fingerprintOf, type Issued } from '../helpers/pki.ts';
import { parsePromText, sampleValue } from '../helpers/prom-text.ts';
import { H2_PREFACE, H2_SETTINGS, HALF_CLIENT_HELLO, rawConnect, tlsConnect } from '../helpers/raw-socket.ts';
import { closedPort } from '../helpers/sluice-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const HANDSHAKE_MS = 400;
const dir = tempDir();
const logging = new Logging({ level: 'silent', node: 'engine-tls' });
const allowlist = path.join(dir, 'agents.allow');
let ca: TestCa;
let server: Issued;
let agent: Issued;
let stranger: Issued;
let models: SluiceNode;
let caPem: Buffer;
const A = Array.from({ length: 16 }, (_, i) => i);

before(async () => {
  ca = new TestCa(dir, 'ca');
  server = ca.issue('sluice', { server: true });
  agent = ca.issue('agent-1');
  stranger = ca.issue('agent-2');
  caPem = readFileSync(ca.cert);
  writeFileSync(allowlist, `${agent.fingerprint}\n`);
  models = new SluiceNode({ config: parseConfig({ models: { listen: { host: '127.0.0.1', port: 0 } }, log: { level: 'silent' } }), logger: logging.component('models'), transports: defaultTransports });
  await models.start();
});
after(() => models.stop(0));

async function startNode(tlsConfig: object, files: { cert: string; key: string } = { cert: server.cert, key: server.key }, handshakeTimeoutMs = HANDSHAKE_MS): Promise<SluiceNode> {
  const seg = await closedPort();
  const node = new SluiceNode({
    config: parseConfig({
      listeners: { grpc: { host: '127.0.0.1', port: 0, handshakeTimeoutMs }, metrics: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key: randomBytes(32).toString('hex'), listen: { host: '127.0.0.1', port: seg } } },
      peers: [{ name: 'self', segment: 'inference', host: '127.0.0.1', port: seg }],
      routes: [{ model: '*', peers: ['self'], upstreams: [{ address: models.endpoints.models! }] }],
      log: { level: 'silent' },
      security: { tls: { enabled: true, certFile: files.cert, keyFile: files.key, ...tlsConfig } },
    }),
    logger: logging.component('node'),
    transports: defaultTransports,
  });
  await node.start();
  assert.equal(node.grpcOnEngine, true, 'the engine serves the TLS gRPC port');
  return node;
}

const portOf = (node: SluiceNode) => Number(node.endpoints.grpc!.split(':').pop());
const fastCalls = (node: SluiceNode) => (node as unknown as { engineIngress: EngineIngress }).engineIngress.engine.counters.ingress('ingressFastCalls');

async function metric(node: SluiceNode, name: string, labels: Record<string, string>): Promise<number> {
  await new Promise((r) => setTimeout(r, 50)); // the engine's events reach JS in batches
  return sampleValue(parsePromText(await node.metrics.render()), name, labels) ?? 0;
}

/** The metric once it reaches `want` (events arrive in batches; slower under ASan), or its value after 5 s. */
async function metricReaching(node: SluiceNode, name: string, labels: Record<string, string>, want: number): Promise<number> {
  let v = await metric(node, name, labels);
  for (let i = 0; i < 50 && v < want; i++) v = await metric(node, name, labels);
  return v;
}

/** The engine dials its egress peers as the node starts: the first call waits for the link (ASan builds are slow). */
async function firstInfer(node: SluiceNode): Promise<number> {
  let code = await infer(node, null);
  for (let i = 0; i < 50 && code === grpc.status.UNAVAILABLE; i++) {
    await new Promise((r) => setTimeout(r, 100));
    code = await infer(node, null);
  }
  return code;
}

function client(node: SluiceNode, who: Issued | null): KserveClient {
  const creds = who === null ? grpc.credentials.createSsl(caPem) : grpc.credentials.createSsl(caPem, readFileSync(who.key), readFileSync(who.cert));
  return new KserveClient(node.endpoints.grpc!.replace('127.0.0.1', 'localhost'), undefined, creds);
}

async function infer(node: SluiceNode, who: Issued | null): Promise<number> {
  const c = client(node, who);
  try {
    const r = await c.infer(
      {
        modelName: 'simple',
        inputs: [
          { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { intContents: A } },
          { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { intContents: A } },
        ],
      },
      { timeoutMs: 5000, requestId: 'engine-tls-1' },
    );
    assert.deepEqual(r.response.outputs[0]!.contents!.intContents, A.map((a) => 2 * a));
    assert.equal(r.requestId, 'engine-tls-1');
    return 0;
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    return (e as CallFailure).code;
  } finally {
    c.close();
  }
}

/** A TLS client's outcome: the negotiated protocol and ALPN, or the error code. */
function handshake(port: number, opts: tls.ConnectionOptions): Promise<{ protocol: string | null; alpn: string | false; cert: string } | { error: string }> {
  return new Promise((resolve) => {
    const s = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: caPem, ...opts }, () => {
      const out = { protocol: s.getProtocol(), alpn: s.alpnProtocol ?? false, cert: s.getPeerCertificate().fingerprint256 };
      s.destroy();
      resolve(out);
    });
    s.once('error', (e: Error & { code?: string }) => resolve({ error: e.code ?? e.message }));
  });
}

test('TLS 1.3 floor: ModelInfer on the engine fast path; TLS 1.2 clients and ALPN without h2 are refused, counted and audited', async () => {
  const node = await startNode({ minVersion: 'TLSv1.3' });
  try {
    const fast = fastCalls(node);
    assert.equal(await firstInfer(node), 0);
    assert.ok(fastCalls(node) > fast, 'ModelInfer took the engine fast path');
    const port = portOf(node);
    const ok = await handshake(port, { ALPNProtocols: ['h2'] });
    assert.ok('protocol' in ok && ok.protocol === 'TLSv1.3' && ok.alpn === 'h2', JSON.stringify(ok));
    const failed = await metric(node, 'sluice_connections_refused_total', { listener: 'grpc', reason: 'tls_handshake_failed' });
    const audited = await metric(node, 'sluice_auth_rejections_total', { method: 'mtls', reason: 'handshake_failed' });
    const old = await handshake(port, { ALPNProtocols: ['h2'], maxVersion: 'TLSv1.2' });
    assert.ok('error' in old, `TLS 1.2 against a 1.3 floor: ${JSON.stringify(old)}`);
    const http1 = await handshake(port, { ALPNProtocols: ['http/1.1'] });
    assert.ok('error' in http1, `ALPN http/1.1 only: ${JSON.stringify(http1)}`);
    assert.equal(http1.error, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL');
    assert.equal(await metricReaching(node, 'sluice_connections_refused_total', { listener: 'grpc', reason: 'tls_handshake_failed' }, failed + 2), failed + 2);
    assert.equal(await metricReaching(node, 'sluice_auth_rejections_total', { method: 'mtls', reason: 'handshake_failed' }, audited + 2), audited + 2);
    assert.equal(await infer(node, null), 0, 'the engine keeps serving');
  } finally {
    await node.stop(0);
  }
});

test('mTLS require: no certificate and an unknown certificate are refused (UNAVAILABLE); an allowlisted one is served; removing it from the allowlist closes its live connection', async () => {
  writeFileSync(allowlist, `${agent.fingerprint}\n`);
  // A longer handshake timeout: the live connection below must outlive it (mTLS handshakes are slow under ASan).
  const handshakeMs = 1500;
  const node = await startNode({ clientCerts: { mode: 'require', caFile: ca.cert, allowlistFile: allowlist } }, undefined, handshakeMs);
  try {
    let first = await infer(node, agent);
    for (let i = 0; i < 50 && first === grpc.status.UNAVAILABLE; i++) first = await new Promise((r) => setTimeout(r, 100)).then(() => infer(node, agent));
    assert.equal(first, 0);
    const refusedBefore = await metric(node, 'sluice_auth_rejections_total', { method: 'mtls', reason: 'client_refused' });
    assert.equal(await infer(node, null), grpc.status.UNAVAILABLE);
    assert.equal(await infer(node, stranger), grpc.status.UNAVAILABLE);
    assert.ok((await metricReaching(node, 'sluice_auth_rejections_total', { method: 'mtls', reason: 'client_refused' }, refusedBefore + 1)) >= refusedBefore + 1, 'the unknown certificate is audited');
    assert.ok((await metricReaching(node, 'sluice_auth_rejections_total', { method: 'mtls', reason: 'handshake_failed' }, 1)) >= 1, 'no certificate: a failed handshake');
    // A live, allowlisted connection; then the allowlist drops it.
    const live = await tlsConnect(portOf(node), caPem, ['h2'], { cert: readFileSync(agent.cert), key: readFileSync(agent.key) });
    let isClosed = false;
    const closed = new Promise<void>((resolve) => live.once('close', () => resolve()));
    void closed.then(() => (isClosed = true));
    live.write(H2_PREFACE);
    live.write(H2_SETTINGS);
    await new Promise((r) => setTimeout(r, handshakeMs + 500));
    assert.equal(isClosed, false, 'an allowlisted HTTP/2 connection stays open past the handshake timeout');
    writeFileSync(allowlist, `${stranger.fingerprint}\n`);
    process.emit('SIGHUP', 'SIGHUP');
    await Promise.race([closed, new Promise((_, rej) => setTimeout(() => rej(new Error('revoked connection stayed open')), 3000))]);
    assert.equal(await metricReaching(node, 'sluice_auth_rejections_total', { method: 'mtls', reason: 'client_revoked' }, 1), 1);
    assert.equal(await infer(node, stranger), 0, 'the new allowlist holds');
  } finally {
    writeFileSync(allowlist, `${agent.fingerprint}\n`);
    await node.stop(0);
  }
});

/**
 * Bytes a TLS server cannot reject until more arrive: an SSLv2-style ClientHello header, a TLS
 * record (major version 3) not yet complete, a ClientHello or handshake header in the first
 * record, or an alert record (warnings are skipped).
 */
function waitsForMore(b: Buffer): boolean {
  if ((b[0]! & 0x80) !== 0 && b[2] === 1) return true;
  if (b[1] !== 3) return false;
  const len = (b[3]! << 8) | b[4]!;
  if (5 + len > b.length) return true;
  if (b[0] === 0x15) return true;
  return b[0] === 0x16 && (len < 4 || b[5] === 1);
}

test('half handshakes close at handshakeTimeoutMs (counted); garbage before the ClientHello closes that connection only', async () => {
  const node = await startNode({});
  try {
    const port = portOf(node);
    const timeouts = await metric(node, 'sluice_connections_refused_total', { listener: 'grpc', reason: 'handshake_timeout' });
    const [silent, half] = await Promise.all([rawConnect(port).then((c) => c.closed(HANDSHAKE_MS + 2000)), rawConnect(port, '127.0.0.1', HALF_CLIENT_HELLO).then((c) => c.closed(HANDSHAKE_MS + 2000))]);
    assert.ok(silent >= HANDSHAKE_MS - 50 && half >= HANDSHAKE_MS - 50, `${silent} ms, ${half} ms`);
    assert.equal(await metricReaching(node, 'sluice_connections_refused_total', { listener: 'grpc', reason: 'handshake_timeout' }, timeouts + 2), timeouts + 2);
    // Garbage (not a TLS record, or a record of junk): closed well before the timeout, counted as failed.
    const failedBefore = await metric(node, 'sluice_connections_refused_total', { listener: 'grpc', reason: 'tls_handshake_failed' });
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uint8Array({ minLength: 6, maxLength: 2048 }), fc.uint8Array({ minLength: 4, maxLength: 512 }).map((b) => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, b.length >> 8, b.length & 0xff]), b]))), async (junk) => {
        const bytes = Buffer.from(junk);
        if (waitsForMore(bytes)) return; // a server rightly waits for the rest (then the timeout closes it)
        runs++;
        const c = await rawConnect(port, '127.0.0.1', bytes);
        const ms = await c.closed(HANDSHAKE_MS + 2000);
        assert.ok(ms < HANDSHAKE_MS + 1000, `closed after ${ms} ms`);
      }),
      { numRuns: 40 },
    );
    assert.ok(runs >= 20, `${runs} garbage inputs the server can reject at once`);
    const failed = await metricReaching(node, 'sluice_connections_refused_total', { listener: 'grpc', reason: 'tls_handshake_failed' }, failedBefore + runs);
    assert.ok(failed >= failedBefore + runs, `${failed - failedBefore} failed handshakes counted for ${runs} garbage inputs`);
    assert.equal(await infer(node, null), 0, 'the engine keeps serving');
  } finally {
    await node.stop(0);
  }
});

test('certificate rotation: SIGHUP re-reads certFile/keyFile; new handshakes get the new certificate', async () => {
  const cert = path.join(dir, 'rotating.crt');
  const key = path.join(dir, 'rotating.key');
  copyFileSync(server.cert, cert);
  copyFileSync(server.key, key);
  const node = await startNode({}, { cert, key });
  try {
    const first = await handshake(portOf(node), { ALPNProtocols: ['h2'] });
    assert.ok('cert' in first);
    const next = ca.issue('sluice-next', { server: true });
    copyFileSync(next.cert, cert);
    copyFileSync(next.key, key);
    process.emit('SIGHUP', 'SIGHUP');
    const want = fingerprintOf(next.cert);
    let seen = '';
    for (let i = 0; i < 40 && seen !== want; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const h = await handshake(portOf(node), { ALPNProtocols: ['h2'] });
      if ('cert' in h) seen = h.cert.replace(/:/g, '').toLowerCase();
    }
    assert.equal(seen, want);
    assert.notEqual(first.cert.replace(/:/g, '').toLowerCase(), want);
    assert.equal(await infer(node, null), 0);
  } finally {
    await node.stop(0);
  }
});
