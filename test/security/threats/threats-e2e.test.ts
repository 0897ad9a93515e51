// Threat detection on a real node: an extraction attack through the gRPC ingress is flagged
// (audit event, metric), the tenant moves to its profile (block: PERMISSION_DENIED from then on,
// every request audited); a benign client of the same node is left alone. And the poisoning
// check on a spooled tensor, with quarantine and `sluice training release`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { benignStream, extractionStream, poison, weightVersions } from '../../../bench/threats/workloads.ts';
import { threatsSchema } from '../../../src/security/threats/threat-config.ts';
import { spooledTensorCheck } from '../../../src/security/threats/spooled-tensor-check.ts';
import { ThreatMonitor } from '../../../src/security/threats/threat-monitor.ts';
import { Spool } from '../../../src/training/spool.ts';
import { KserveClient } from '../../helpers/kserve-client.ts';
import { startSluice, type SluiceProcess } from '../../helpers/sluice-process.ts';
import { tempDir } from '../../helpers/temp-dir.ts';

const dense = (v: Float32Array) => ({ modelName: 'dense', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 64] }], rawInputContents: [Buffer.from(v.buffer)] });

test('an extraction attack is flagged and its tenant blocked; audited; metric counted', { timeout: 240_000 }, async () => {
  const dir = tempDir('threats-e2e');
  const key = randomBytes(32).toString('hex');
  const procs: SluiceProcess[] = [];
  try {
    const models = await startSluice({ node: { name: 'threats-models' }, models: { listen: { host: '127.0.0.1', port: 0 } }, log: { level: 'warn' } }, { name: 'models' });
    procs.push(models);
    const egress = await startSluice(
      {
        node: { name: 'threats-egress' },
        segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: 0 } } },
        routes: [{ model: '*', upstreams: [{ address: models.endpoints.models! }] }],
        log: { level: 'warn' },
      },
      { name: 'egress' },
    );
    procs.push(egress);
    const [h, p] = egress.endpoints.segment!.split(':') as [string, string];
    const audit = path.join(dir, 'audit.jsonl');
    const ingress = await startSluice(
      {
        node: { name: 'threats-ingress' },
        listeners: { grpc: { host: '127.0.0.1', port: 0 }, metrics: { host: '127.0.0.1', port: 0 } },
        segments: { inference: { transport: 'tcp', key } },
        peers: [{ name: 'egress', segment: 'inference', host: h, port: Number(p) }],
        routes: [{ model: '*', peers: ['egress'] }],
        security: {
          audit: { enabled: true, path: audit, adminPath: path.join(dir, 'admin.jsonl') },
          threats: { enabled: true, defaultAction: 'block', profile: { durationSeconds: 600 } },
        },
        log: { level: 'warn' },
      },
      { name: 'ingress' },
    );
    procs.push(ingress);
    const client = new KserveClient(ingress.endpoints.grpc!);
    // Benign traffic first: served, nothing flagged.
    const benign = benignStream(3);
    for (let i = 0; i < 150; i++) await client.call('ModelInfer', dense(benign()));
    // The attack (the same tenant: authentication is off, every caller is `anonymous`).
    const attack = extractionStream();
    let refused: { code: number; details: string } | undefined;
    for (let i = 0; i < 1000 && refused === undefined; i++) {
      try {
        await client.call('ModelInfer', dense(attack()));
      } catch (err) {
        refused = err as { code: number; details: string };
      }
    }
    assert.ok(refused !== undefined, 'the attacker was never refused');
    assert.equal(refused.code, 7, `PERMISSION_DENIED, got ${JSON.stringify(refused)}`);
    assert.match(refused.details, /blocked .* suspected extraction/);
    client.raw.close();
    const metrics = await (await fetch(`http://${ingress.endpoints.metrics}/metrics`)).text();
    assert.match(metrics, /sluice_threat_signals_total\{signal="extraction",tenant="anonymous"\} [1-9]/);
    await ingress.stop();
    const entries = readFileSync(audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { action: string; tenant: string | null; detail?: Record<string, unknown> });
    const flagged = entries.find((e) => e.action === 'threat.extraction_suspected');
    assert.ok(flagged, 'extraction audited');
    assert.equal(flagged.tenant, 'anonymous');
    assert.ok(entries.some((e) => e.action === 'threat.profile_entered'));
    assert.ok(entries.some((e) => e.action === 'threat.profile_request'), 'requests in the profile are audited');
    assert.ok(!JSON.stringify(entries).includes('rawInputContents'));
  } finally {
    for (const pr of procs.reverse()) await pr.stop();
  }
});

test('poisoning: a scaled push is withheld (quarantine) until `sluice training release`, which is audited', async () => {
  const dir = tempDir('threats-quarantine');
  const spool = new Spool(path.join(dir, 'spool'));
  await spool.init();
  const events: { type: string }[] = [];
  const monitor = new ThreatMonitor(threatsSchema.parse({ enabled: true, poisoning: { quarantine: true } }), { emit: (e) => events.push(e) });
  const check = spooledTensorCheck(monitor, true);
  const versions = weightVersions(16384);
  const meta = (id: string) => ({ id, from: 'job-a', tensor: { name: 'layer1.weight', datatype: 'FP32', shape: [16384], attributes: {} } });
  const file = path.join(dir, 'w.tensor');
  for (let i = 0; i < 3; i++) {
    writeFileSync(file, Buffer.from(versions().buffer));
    assert.deepEqual(await check({ ...meta(`clean-${i}`), file }), { withhold: false });
  }
  writeFileSync(file, Buffer.from(poison(versions(), 'scaled').buffer));
  const verdict = await check({ ...meta('bad'), file });
  assert.equal(verdict.withhold, true);
  assert.match(verdict.reason!, /norm_jump/);
  assert.equal(events[0]?.type, 'threat.poisoning_suspected');
  await spool.withhold('bad', { reason: verdict.reason, tensor: 'layer1.weight', from: 'job-a' });
  assert.ok((await spool.withheld('bad')) !== undefined);
  // Release through the CLI, as an operator on the node would.
  writeFileSync(path.join(dir, 'sluice.yaml'), ['training:', `  spoolDir: ${path.join(dir, 'spool')}`, 'security:', '  audit:', `    adminPath: ${path.join(dir, 'admin.jsonl')}`, ''].join('\n'));
  const root = path.resolve(import.meta.dirname, '../../..');
  const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin/sluice.mjs'), ...args, '--config', path.join(dir, 'sluice.yaml')], { encoding: 'utf8', env: { ...process.env, SLUICE_CONFIG: '' }, timeout: 120_000 });
  const noReason = cli('training', 'release', 'bad');
  assert.notEqual(noReason.status, 0);
  const ok = cli('training', 'release', 'bad', '--reason', 'reviewed: learning-rate spike, expected');
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(await spool.withheld('bad'), undefined);
  const admin = readFileSync(path.join(dir, 'admin.jsonl'), 'utf8');
  assert.match(admin, /"action":"training.release"/);
  const again = cli('training', 'release', 'bad', '--reason', 'reviewed twice by mistake');
  assert.notEqual(again.status, 0);
});
