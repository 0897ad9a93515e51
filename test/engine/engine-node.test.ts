// A sluice node serving the egress role over a TCP segment runs it in the native engine: calls
// from an ingress node pass, the link metrics keep their names and are read from the engine's
// counters block, the drain counts its calls; SLUICE_ENGINE=0 keeps the TypeScript path.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { closedPort } from '../helpers/sluice-process.ts';
import { parsePromText, sampleSum, sampleValue } from '../helpers/prom-text.ts';

async function pair(engineEnv: string | undefined): Promise<{ ingress: SluiceNode; egress: SluiceNode; models: SluiceNode; stop: () => Promise<void> }> {
  const logging = new Logging({ level: 'silent', node: 'engine-node' });
  const key = randomBytes(32).toString('hex');
  const seg = await closedPort();
  const models = new SluiceNode({ config: parseConfig({ models: { listen: { host: '127.0.0.1', port: 0 } }, log: { level: 'silent' } }), logger: logging.component('m'), transports: defaultTransports });
  await models.start();
  const saved = process.env.SLUICE_ENGINE;
  if (engineEnv === undefined) delete process.env.SLUICE_ENGINE;
  else process.env.SLUICE_ENGINE = engineEnv;
  const egress = new SluiceNode({
    config: parseConfig({
      listeners: { metrics: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: seg }, dscp: 34 } },
      routes: [{ model: '*', upstreams: [{ address: models.endpoints.models! }] }],
      log: { level: 'silent' },
    }),
    logger: logging.component('e'),
    transports: defaultTransports,
  });
  try {
    await egress.start();
  } finally {
    if (saved === undefined) delete process.env.SLUICE_ENGINE;
    else process.env.SLUICE_ENGINE = saved;
  }
  const ingress = new SluiceNode({
    config: parseConfig({
      listeners: { http: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key } },
      peers: [{ name: 'egress', segment: 'inference', host: '127.0.0.1', port: seg }],
      routes: [{ model: '*', peers: ['egress'] }],
      log: { level: 'silent' },
    }),
    logger: logging.component('i'),
    transports: defaultTransports,
  });
  await ingress.start();
  return {
    ingress,
    egress,
    models,
    stop: async () => {
      await ingress.stop(0);
      await egress.stop(0);
      await models.stop(0);
    },
  };
}

async function inferSimple(ingress: SluiceNode, id: string): Promise<Response> {
  return fetch(`http://${ingress.endpoints.http}/v2/models/simple/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id },
    body: JSON.stringify({
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: Array.from({ length: 16 }, (_, i) => i) },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: Array.from({ length: 16 }, () => 1) },
      ],
    }),
  });
}

test('the egress runs in the engine; metrics come from its counters block', { timeout: 60_000 }, async () => {
  const p = await pair(undefined);
  try {
    assert.equal(p.egress.egressOnEngine, true);
    for (let i = 0; i < 5; i++) {
      const r = await inferSimple(p.ingress, `eng-${i}`);
      const text = await r.text();
      assert.equal(r.status, 200, text);
      const body = JSON.parse(text) as { outputs: { name: string; data: number[] }[] };
      assert.deepEqual(body.outputs.find((o) => o.name === 'OUTPUT0')!.data, Array.from({ length: 16 }, (_, j) => j + 1));
    }
    const scrape = parsePromText(await (await fetch(`http://${p.egress.endpoints.metrics}/metrics`)).text());
    assert.equal(sampleValue(scrape, 'sluice_links_open', { segment: 'inference', transport: 'tcp' }), 1);
    assert.ok(sampleSum(scrape, 'sluice_link_messages_total', { segment: 'inference', direction: 'rx' }) >= 5);
    assert.ok(sampleSum(scrape, 'sluice_link_bytes_total', { segment: 'inference', direction: 'tx' }) > 0);
  } finally {
    await p.stop();
  }
});

test('SLUICE_ENGINE=0 keeps the TypeScript egress, with the same answers', { timeout: 60_000 }, async () => {
  const p = await pair('0');
  try {
    assert.equal(p.egress.egressOnEngine, false);
    const r = await inferSimple(p.ingress, 'ts-1');
    assert.equal(r.status, 200);
  } finally {
    await p.stop();
  }
});
