// The engine's gRPC listener reports the connections it refuses or closes early into
// sluice_connections_refused_total{listener="grpc"}, read from its counters block at scrape time:
// over maxConnections, no HTTP/2 preface within handshakeTimeoutMs, broken preface.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { parsePromText, sampleValue } from '../helpers/prom-text.ts';
import { closedPort } from '../helpers/sluice-process.ts';

function connect(address: string): Promise<net.Socket> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port: Number(port) }, () => resolve(s));
    s.once('error', reject);
  });
}

const closed = (s: net.Socket): Promise<void> =>
  new Promise((resolve) => {
    if (s.destroyed) resolve();
    s.on('error', () => {});
    s.once('close', () => resolve());
    s.resume();
  });

test('the engine listener counts its refusals by reason in sluice_connections_refused_total', { timeout: 60_000 }, async () => {
  const node = new SluiceNode({
    config: parseConfig({
      listeners: { grpc: { host: '127.0.0.1', port: 0, handshakeTimeoutMs: 800, maxConnections: 2 } },
      segments: { inference: { transport: 'tcp', key: randomBytes(32).toString('hex') } },
      peers: [{ name: 'egress', segment: 'inference', host: '127.0.0.1', port: await closedPort() }],
      routes: [{ model: '*', peers: ['egress'] }],
      log: { level: 'silent' },
    }),
    logger: new Logging({ level: 'silent', node: 'refusals' }).component('i'),
    transports: defaultTransports,
  });
  await node.start();
  const refused = async (reason: string) => sampleValue(parsePromText(await node.metrics.render()), 'sluice_connections_refused_total', { listener: 'grpc', reason }) ?? 0;
  try {
    assert.equal(node.grpcOnEngine, true);
    const address = node.endpoints.grpc!;
    // Two silent connections fill the listener; a third is closed at once.
    const a = await connect(address);
    const b = await connect(address);
    await new Promise((r) => setTimeout(r, 100)); // both accepted by the engine thread
    const c = await connect(address);
    await closed(c);
    assert.equal(await refused('max_connections'), 1);
    // The silent two: no preface within handshakeTimeoutMs.
    await Promise.all([closed(a), closed(b)]);
    assert.equal(await refused('handshake_timeout'), 2);
    // A broken preface: GOAWAY(PROTOCOL_ERROR), then closed.
    const d = await connect(address);
    d.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(4));
    await closed(d);
    assert.equal(await refused('protocol_error'), 1);
    assert.equal(await refused('idle_timeout'), 0);
  } finally {
    await node.stop(0);
  }
});
