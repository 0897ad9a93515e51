// Every listener of a real node closes connections that never talk (issue: fd exhaustion without
// credentials): raw TCP that sends nothing, half a TLS ClientHello, a TLS session that never sends
// the HTTP/2 preface, on the gRPC port (TLS, and plaintext h2c through grpc-js on a training-only
// node), the HTTP port (uWS), the metrics port and the segment listener; connections over
// maxConnections are closed on accept; each refusal is counted in
// sluice_connections_refused_total{listener,reason}.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { TestCa } from '../helpers/pki.ts';
import { parsePromText, scrape, sampleValue } from '../helpers/prom-text.ts';
import { HALF_CLIENT_HELLO, HALF_H2_PREFACE, rawConnect, tlsConnect } from '../helpers/raw-socket.ts';
import { closedPort } from '../helpers/sluice-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const HANDSHAKE_MS = 400;
/** Closed within this (timer granularity and a loaded machine). */
const BOUND_MS = HANDSHAKE_MS + 2000;
const dir = tempDir();
const logging = new Logging({ level: 'silent', node: 'limits-test' });
const limits = { handshakeTimeoutMs: HANDSHAKE_MS, idleTimeoutMs: 5000 };
let caCert: string;
let models: SluiceNode;
let node: SluiceNode;
let trainer: SluiceNode;
const portOf = (addr: string | undefined) => Number(addr!.split(':').pop());

before(async () => {
  const ca = new TestCa(dir, 'ca');
  const server = ca.issue('sluice', { server: true });
  caCert = readFileSync(ca.cert, 'utf8');
  models = new SluiceNode({ config: parseConfig({ models: { listen: { host: '127.0.0.1', port: 0 } }, log: { level: 'silent' } }), logger: logging.component('models'), transports: defaultTransports });
  await models.start();
  const seg = await closedPort();
  node = new SluiceNode({
    config: parseConfig({
      listeners: {
        http: { host: '127.0.0.1', port: 0, ...limits },
        grpc: { host: '127.0.0.1', port: 0, ...limits },
        metrics: { host: '127.0.0.1', port: 0, ...limits, maxConnections: 3 },
      },
      segments: { inference: { transport: 'tcp', key: randomBytes(32).toString('hex'), listen: { host: '127.0.0.1', port: seg, handshakeTimeoutMs: HANDSHAKE_MS } } },
      peers: [{ name: 'self', segment: 'inference', host: '127.0.0.1', port: seg }],
      routes: [{ model: '*', peers: ['self'], upstreams: [{ address: models.endpoints.models! }] }],
      log: { level: 'silent' },
      security: { tls: { enabled: true, certFile: server.cert, keyFile: server.key } },
    }),
    logger: logging.component('node'),
    transports: defaultTransports,
  });
  await node.start();
  trainer = new SluiceNode({
    config: parseConfig({
      listeners: { grpc: { host: '127.0.0.1', port: 0, ...limits }, training: { host: '127.0.0.1', port: 0 } },
      segments: { training: { transport: 'tcp', key: randomBytes(32).toString('hex') } },
      training: { spoolDir: path.join(dir, 'spool') },
      log: { level: 'silent' },
    }),
    logger: logging.component('trainer'),
    transports: defaultTransports,
  });
  await trainer.start();
});

after(async () => {
  await trainer?.stop(0);
  await node?.stop(0);
  await models?.stop(0);
});

async function refused(listener: string, reason: string): Promise<number> {
  return sampleValue(await scrape(`http://${node.endpoints.metrics}/metrics`), 'sluice_connections_refused_total', { listener, reason }) ?? 0;
}

async function closedInTime(port: number, first?: Buffer | string, bound = BOUND_MS): Promise<number> {
  const c = await rawConnect(port, '127.0.0.1', first);
  return c.closed(bound);
}

test('gRPC over TLS: silence, half a ClientHello and a TLS session without the HTTP/2 preface are closed', async () => {
  const port = portOf(node.endpoints.grpc);
  const before = await refused('grpc', 'handshake_timeout');
  const [silent, half] = await Promise.all([closedInTime(port), closedInTime(port, HALF_CLIENT_HELLO)]);
  assert.ok(silent >= HANDSHAKE_MS - 50, `silent: ${silent} ms`);
  assert.ok(half >= HANDSHAKE_MS - 50, `half ClientHello: ${half} ms`);
  // TLS completes; then nothing: the HTTP/2 preface deadline closes it.
  const tls = await tlsConnect(port, caCert, ['h2']);
  const started = Date.now();
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('TLS session without a preface stayed open')), BOUND_MS);
    tls.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
  assert.ok(Date.now() - started < BOUND_MS);
  assert.equal(await refused('grpc', 'handshake_timeout'), before + 3);
});

test('gRPC h2c on grpc-js (training-only node): silence and half a preface are closed', async () => {
  const port = portOf(trainer.endpoints.grpc);
  const [silent, half] = await Promise.all([closedInTime(port), closedInTime(port, HALF_H2_PREFACE)]);
  assert.ok(silent >= HANDSHAKE_MS - 50 && half >= HANDSHAKE_MS - 50, `${silent} ms, ${half} ms`);
  // The training thread serves this port; its counters reach the node's scrape merged.
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(sampleValue(parsePromText(await trainer.metrics.render()), 'sluice_connections_refused_total', { listener: 'grpc', reason: 'handshake_timeout' }), 2);
});

test('metrics: a silent connection is closed; connections over maxConnections are closed on accept', async () => {
  const port = portOf(node.endpoints.metrics);
  const before = await refused('metrics', 'handshake_timeout');
  assert.ok((await closedInTime(port)) >= HANDSHAKE_MS - 50);
  assert.equal(await refused('metrics', 'handshake_timeout'), before + 1);
  const dropped = await refused('metrics', 'max_connections');
  // The scraper's keep-alive connection may hold one of the three places: then one of these is over the cap too.
  const held = await Promise.all([rawConnect(port), rawConnect(port), rawConnect(port)]);
  await new Promise((r) => setTimeout(r, 50));
  const over = await closedInTime(port, undefined, HANDSHAKE_MS);
  assert.ok(over < HANDSHAKE_MS, `over the cap: ${over} ms`);
  for (const h of held) h.socket.destroy();
  await new Promise((r) => setTimeout(r, 50));
  assert.ok((await refused('metrics', 'max_connections')) >= dropped + 1);
});

test('segment listener: a silent connection is closed after its handshake timeout and counted', async () => {
  const port = portOf(node.endpoints.segment);
  const ms = await closedInTime(port);
  assert.ok(ms >= HANDSHAKE_MS - 50, `${ms} ms`);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(await refused('segment:inference', 'handshake_timeout'), 1);
});

test('HTTP (uWS SSLApp): silence and half a ClientHello are closed by uWS within its fixed 10 s timeout', { timeout: 30_000 }, async () => {
  const port = portOf(node.endpoints.http);
  const [silent, half] = await Promise.all([closedInTime(port, undefined, 20_000), closedInTime(port, HALF_CLIENT_HELLO, 20_000)]);
  assert.ok(silent < 20_000 && half < 20_000, `${silent} ms, ${half} ms`);
});
