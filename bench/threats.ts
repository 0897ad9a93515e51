// Threat-detection evaluation (issue 17): the frozen workloads of bench/threats/workloads.ts
// through the same ThreatMonitor the node runs, on vectors shaped as the `dense` reference
// model's input ([1, 64] FP32). Reports detection rate per attack, queries to detection, false
// positives per 10k benign queries, and the detectors' cost per call. Writes
// bench/results/threats.json (latest) and a dated copy under bench/results/history/.
// `--quick`: fewer benign queries (a smoke test).
import { randomBytes } from 'node:crypto';
import { METHODS } from '../src/kserve/grpc-service.ts';
import { encodeMessage } from '../src/kserve/proto.ts';
import type { SecurityEvent } from '../src/security/events.ts';
import { startSluice, type SluiceProcess } from '../scripts/sluice-child.ts';
import { RawGrpcClient } from './grpc-load.ts';
import { threatsSchema } from '../src/security/threats/threat-config.ts';
import { ThreatMonitor } from '../src/security/threats/threat-monitor.ts';
import { formatTable, median, writeResults } from './report.ts';
import { adversarialStream, benignStream, DIM, extractionStream, poison, POISON_VARIANTS, weightVersions } from './threats/workloads.ts';

const BENIGN_TENANTS = 5;

export async function run(args: readonly string[] = []): Promise<void> {
  const quick = args.includes('--quick');
  const benignPerTenant = quick ? 400 : 2000;
  const events: SecurityEvent[] = [];
  const cfg = threatsSchema.parse({ enabled: true });
  const monitor = new ThreatMonitor(cfg, { emit: (e) => events.push(e) });
  const shape = [1, DIM];
  const call = (tenant: string, v: Float32Array, requestId: string) => ({ tenant, model: 'dense', requestId, inputs: [{ name: 'INPUT0', shape, values: v }] });
  const signalsOf = (tenant: string, type: string): number => events.filter((e) => e.tenant === tenant && e.type === type).length;

  // Benign clients, interleaved (their traffic also warms the adversarial baseline up).
  const streams = Array.from({ length: BENIGN_TENANTS }, (_, t) => benignStream(t));
  const costs: number[] = [];
  for (let i = 0; i < benignPerTenant; i++) {
    for (let t = 0; t < BENIGN_TENANTS; t++) {
      const t0 = performance.now();
      monitor.inspect(call(`benign-${t}`, streams[t]!(), `b${t}-${i}`));
      costs.push(performance.now() - t0);
    }
  }
  const benignQueries = benignPerTenant * BENIGN_TENANTS;
  const falsePositives = events.filter((e) => e.tenant!.startsWith('benign-') && e.type.startsWith('threat.') && e.type !== 'threat.profile_entered').length;

  // Extraction: one attacker, until flagged (bounded).
  const attack = extractionStream();
  let detectedAfter: number | null = null;
  for (let q = 1; q <= 5000 && detectedAfter === null; q++) {
    monitor.inspect(call('attacker', attack(), `x${q}`));
    if (signalsOf('attacker', 'threat.extraction_suspected') > 0) detectedAfter = q;
  }

  // Adversarial: FGSM-like inputs from another tenant, at three strengths; rate = flagged / inputs.
  const adversarialInputs = 1000;
  const rates: Record<string, number> = {};
  for (const epsilon of [0.02, 0.05, 0.1]) {
    let flagged = 0;
    const adv = adversarialStream(epsilon);
    const counted = new ThreatMonitor(cfg, { emit() {} }, { onSignal: (s) => void (s === 'adversarial' && flagged++) });
    const warm = benignStream(42);
    for (let i = 0; i < cfg.adversarial.warmup; i++) counted.inspect(call('warm', warm(), `w${i}`));
    for (let i = 0; i < adversarialInputs; i++) counted.inspect(call('fgsm', adv(), `a${i}`));
    rates[String(epsilon)] = flagged / adversarialInputs;
  }

  // Poisoning: a clean version history, then each variant pushed against the latest version.
  const versions = weightVersions();
  let poisonFalse = 0;
  for (let i = 0; i < 20; i++) if (monitor.inspectTrainingTensor('layer1.weight', 'job-a', 'train', versions(), [65536], `t${i}`).flagged) poisonFalse++;
  const latest = versions();
  monitor.inspectTrainingTensor('layer1.weight', 'job-a', 'train', latest, [65536], 't-latest');
  const variants: Record<string, string[]> = {};
  for (const variant of POISON_VARIANTS) variants[variant] = monitor.inspectTrainingTensor('layer1.weight', 'job-a', 'train', poison(latest, variant), [65536], `p-${variant}`).signals;
  variants['unexpected sender'] = monitor.inspectTrainingTensor('layer1.weight', 'job-b', 'train', versions(), [65536], 'p-sender').signals;
  const poisonFlagged = Object.values(variants).filter((s) => s.length > 0).length;

  const sorted = [...costs].sort((a, b) => a - b);
  const costUs = { p50: median(costs) * 1000, p99: sorted[Math.floor(sorted.length * 0.99)]! * 1000 };
  const result = {
    quick,
    extraction: { detectedAfterQueries: detectedAfter, target: 1000 },
    benign: { queries: benignQueries, tenants: BENIGN_TENANTS, falsePositives, falsePositivesPer10k: (falsePositives * 10_000) / benignQueries },
    adversarial: { inputs: adversarialInputs, detectionRate: rates['0.1']!, epsilon: 0.1, detectionRateByEpsilon: rates },
    poisoning: { flagged: poisonFlagged, variants: Object.keys(variants).length, signals: variants, cleanVersionsFlagged: poisonFalse },
    costUsPerCall: costUs,
  };
  console.log(`threat detection on the frozen workloads (dense input [1, ${DIM}] FP32)${quick ? ' (--quick)' : ''}`);
  console.log(
    formatTable(
      ['measure', 'value', 'target'],
      [
        ['extraction: attacker queries to detection', String(detectedAfter ?? 'not detected in 5000'), '<= 1000'],
        ['benign: false positives', `${falsePositives} in ${benignQueries} (${result.benign.falsePositivesPer10k.toFixed(1)} per 10k)`, '0 per 10k'],
        ...Object.entries(rates).map(([eps, r]) => [`adversarial (FGSM-like, eps ${eps}): detection rate`, `${(r * 100).toFixed(1)}%`, '']),
        ['poisoning: variants flagged', `${poisonFlagged} of ${Object.keys(variants).length} (clean versions flagged: ${poisonFalse})`, 'all'],
        ['detector cost per call (inspect, p50 / p99)', `${costUs.p50.toFixed(1)} / ${costUs.p99.toFixed(1)} us`, ''],
      ],
    ),
  );
  for (const [v, s] of Object.entries(variants)) console.log(`  poisoning ${v}: ${s.join(', ') || 'NOT flagged'}`);
  const paired = await pairedCost(quick ? 300 : 3000, benignStream(7));
  console.log(
    `end to end, one call at a time to each node in turn (${paired.calls} calls each, dense [1, ${DIM}]): p50 ${paired.offP50.toFixed(3)} ms detection off, ` +
      `${paired.onP50.toFixed(3)} ms on -> +${((paired.onP50 / paired.offP50 - 1) * 100).toFixed(1)}% (target <= 5%)`,
  );
  writeResults('threats', { ...result, endToEnd: paired }, { topLevel: true });
}

/**
 * The detection cost on the data path: two sluice pairs alike but for the ingress's
 * `security.threats.enabled`, in front of one shared model server, called one call at a time in
 * turn (the paired, interleaved design: background load falls on both alike); p50 of each.
 */
async function pairedCost(calls: number, inputs: () => Float32Array): Promise<{ calls: number; offP50: number; onP50: number; ratio: number }> {
  const procs: SluiceProcess[] = [];
  const clients: RawGrpcClient[] = [];
  try {
    const key = randomBytes(32).toString('hex');
    const models = await startSluice({ node: { name: 'bench-threats-models' }, models: { listen: { host: '127.0.0.1', port: 0 } } }, { name: 'threats-models' });
    procs.push(models);
    for (const on of [false, true]) {
      const egress = await startSluice(
        {
          node: { name: `bench-threats-egress-${on ? 'on' : 'off'}` },
          segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: 0 } } },
          routes: [{ model: '*', upstreams: [{ address: models.endpoints.models! }] }],
          log: { level: 'warn' },
        },
        { name: `threats-egress-${on ? 'on' : 'off'}` },
      );
      procs.push(egress);
      const [h, port] = egress.endpoints.segment!.split(':') as [string, string];
      const ingress = await startSluice(
        {
          node: { name: `bench-threats-ingress-${on ? 'on' : 'off'}` },
          listeners: { grpc: { host: '127.0.0.1', port: 0 } },
          segments: { inference: { transport: 'tcp', key } },
          peers: [{ name: 'egress', segment: 'inference', host: h, port: Number(port) }],
          routes: [{ model: '*', peers: ['egress'] }],
          security: { threats: { enabled: on } },
          log: { level: 'warn' },
        },
        { name: `threats-ingress-${on ? 'on' : 'off'}` },
      );
      procs.push(ingress);
      clients.push(new RawGrpcClient(ingress.endpoints.grpc!));
    }
    // Varied inputs (benign traffic), the same one to both nodes in each turn: identical
    // queries would keep PRADA's growing set at one vector and understate its cost.
    const bodies = Array.from({ length: 512 }, () =>
      encodeMessage('ModelInferRequest', { modelName: 'dense', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, DIM] }], rawInputContents: [Buffer.from(inputs().buffer)] }),
    );
    const latencies: number[][] = [[], []];
    for (let it = 0; it < Math.min(1000, calls) + calls; it++) {
      const body = bodies[it % bodies.length]!;
      for (let k = 0; k < 2; k++) {
        const i = (it + k) % 2; // the first node of a turn alternates
        const t0 = performance.now();
        await clients[i]!.call(METHODS.ModelInfer.path, body);
        if (it >= Math.min(1000, calls)) latencies[i]!.push(performance.now() - t0); // after warm-up (JIT, links)
      }
    }
    const offP50 = median(latencies[0]!);
    const onP50 = median(latencies[1]!);
    return { calls, offP50, onP50, ratio: onP50 / offP50 };
  } finally {
    for (const c of clients) c.close();
    for (const p of procs.reverse()) await p.stop();
  }
}
