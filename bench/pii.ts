// PII policy: how well the recognizers find planted PII, what scanning costs, and that tenants
// without a policy pay nothing on the inference path.
//   accuracy  recall and precision per class on the frozen labelled corpus (pii-corpus.ts,
//             committed with its seed before the recognizers were tuned)
//   cost      scanText per KiB of prompt text, and the whole strict-mode request stage (decode,
//             scan, redact, re-encode a ModelInferRequest with one BYTES tensor) per KiB
//   no policy the gateway's ModelInfer path with the PII stage installed, for a tenant without
//             a policy, against the same gateway without the stage: paired and interleaved
//             (ABAB... in batches, order alternating), the segment replaced by an immediate
//             answer so only the gateway's own work is timed
// Options: --quick (smaller corpus, fewer rounds). Writes bench/results/pii.json.
import { encodeMessage } from '../src/kserve/proto.ts';
import { parseConfig } from '../src/config/load.ts';
import { HookChain } from '../src/ingress/hooks.ts';
import { CallMethod, InferenceGateway } from '../src/ingress/inference-gateway.ts';
import { newRequestContext, type RequestContext } from '../src/ingress/request-context.ts';
import type { RouteTable } from '../src/ingress/route-table.ts';
import type { SegmentForwarder } from '../src/ingress/segment-forwarder.ts';
import { PiiStage } from '../src/security/pii/pii-stage.ts';
import { scanText } from '../src/security/pii/scanner.ts';
import { Logging } from '../src/telemetry/logger.ts';
import { gradeRecognizers } from './pii-accuracy.ts';
import { generatePiiCorpus, PII_CORPUS_SEED, PII_CORPUS_VERSION } from './pii-corpus.ts';
import { formatTable, machine, median, writeResults } from './report.ts';

const CHECKSUM_AND_FORMAT = new Set(['email', 'phone', 'payment_card', 'gov_id', 'iban', 'ip_address', 'credential']);

function bytesTensorRequest(text: string): Buffer {
  const b = Buffer.from(text, 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32LE(b.length);
  return encodeMessage('ModelInferRequest', { modelName: 'm', inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [1] }], rawInputContents: [Buffer.concat([head, b])] });
}

function timeLoop(fn: () => void, minMs: number): number {
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < minMs) {
    for (let i = 0; i < 20; i++) fn();
    n += 20;
    t = performance.now();
  }
  return (t - t0) / n;
}

export async function run(args: readonly string[]): Promise<void> {
  const quick = args.includes('--quick');
  // ---- accuracy ----
  const docs = generatePiiCorpus(quick ? 1000 : 5000);
  const scores = gradeRecognizers(docs);
  console.log(`corpus v${PII_CORPUS_VERSION} seed 0x${PII_CORPUS_SEED.toString(16)}: ${docs.length} documents, ${docs.filter((d) => d.labels.length === 0).length} PII-free`);
  console.log(
    formatTable(
      ['class', 'kind', 'planted', 'recall', 'predicted', 'precision', 'target'],
      scores.map((s) => {
        const checked = CHECKSUM_AND_FORMAT.has(s.cls);
        return [s.cls, checked ? 'checksum/format' : 'lexicon/context', String(s.planted), s.recall.toFixed(3), String(s.predicted), s.precision.toFixed(3), checked ? (s.recall >= 0.95 ? 'recall>=0.95 met' : 'recall>=0.95 MISSED') : 'reported'];
      }),
    ),
  );
  // ---- cost ----
  const text = docs.map((d) => d.text).join('\n');
  const kib = Buffer.byteLength(text) / 1024;
  const scanMs = timeLoop(() => scanText(text), quick ? 300 : 1500) ;
  const prompt = docs.slice(0, 40).map((d) => d.text).join(' ');
  const promptKib = Buffer.byteLength(prompt) / 1024;
  const payload = bytesTensorRequest(prompt);
  const cfg = parseConfig({ security: { tenants: [{ name: 'acme', id: 1 }, { name: 'plain', id: 2 }], pii: { enabled: true, policies: [{ tenant: 'acme', mode: 'strict' }] } } });
  const stage = (await PiiStage.create({ config: cfg.security, recorder: null }))!;
  const ctxFor = (tenant: number): RequestContext => {
    const c = newRequestContext({ requestId: 'b', protocol: 'grpc', method: 'ModelInfer', model: 'm', version: '', deadline: Date.now() + 1e6, headers: {}, requestBytes: payload.length });
    c.tenant = tenant;
    return c;
  };
  const stageMs = timeLoop(() => stage.request(ctxFor(1), payload), quick ? 300 : 1500);
  console.log(
    formatTable(
      ['what', 'KiB', 'µs per call', 'µs per KiB'],
      [
        ['scanText (all classes)', kib.toFixed(0), (scanMs * 1000).toFixed(0), ((scanMs * 1000) / kib).toFixed(1)],
        ['strict request stage (decode, scan, redact, encode)', promptKib.toFixed(1), (stageMs * 1000).toFixed(0), ((stageMs * 1000) / promptKib).toFixed(1)],
      ],
    ),
  );
  // ---- tenants without a policy ----
  const answer = encodeMessage('ModelInferResponse', { modelName: 'm', outputs: [] });
  const forwarder = { inflight: 0, call: () => Promise.resolve(answer) } as unknown as SegmentForwarder;
  const routes = { peersFor: () => ['p'] } as unknown as RouteTable;
  const logger = new Logging({ level: 'silent', node: 'bench' }).component('bench');
  const tenantHook = (id: number) => ({ name: 'tenant', onRequest: (c: RequestContext) => void (c.tenant = id) });
  const plain = new InferenceGateway({ routes, forwarder, hooks: new HookChain().add(tenantHook(2)), logger, defaultTimeoutMs: 1000 });
  const staged = new InferenceGateway({ routes, forwarder, hooks: new HookChain().add(tenantHook(2)), logger, defaultTimeoutMs: 1000, stage });
  const withPolicy = new InferenceGateway({ routes, forwarder, hooks: new HookChain().add(tenantHook(1)), logger, defaultTimeoutMs: 1000, stage });
  const BATCH = 200;
  const rounds = quick ? 40 : 300;
  const batch = async (gw: InferenceGateway): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < BATCH; i++) await gw.forward(ctxFor(0), CallMethod.ModelInfer, payload);
    return ((performance.now() - t0) * 1000) / BATCH;
  };
  const a: number[] = [];
  const b: number[] = [];
  const diffs: number[] = [];
  for (let i = 0; i < 5; i++) await batch(plain), await batch(staged);
  for (let r = 0; r < rounds; r++) {
    let x: number;
    let y: number;
    if (r % 2 === 0) {
      x = await batch(plain);
      y = await batch(staged);
    } else {
      y = await batch(staged);
      x = await batch(plain);
    }
    a.push(x);
    b.push(y);
    diffs.push(y - x);
  }
  const policy: number[] = [];
  for (let r = 0; r < Math.min(rounds, 20); r++) policy.push(await batch(withPolicy));
  const sorted = [...diffs].sort((p, q) => p - q);
  const ci: [number, number] = [sorted[Math.floor(sorted.length * 0.025)] ?? 0, sorted[Math.floor(sorted.length * 0.975)] ?? 0];
  console.log(
    formatTable(
      ['gateway ModelInfer path (in-process, immediate answer)', 'µs per call (median of batch means)'],
      [
        ['no PII stage', median(a).toFixed(2)],
        ['PII stage installed, tenant without a policy', median(b).toFixed(2)],
        ['paired difference (median; 95% of rounds within)', `${median(diffs).toFixed(2)} [${ci[0].toFixed(2)}, ${ci[1].toFixed(2)}]`],
        [`tenant with a strict policy (${promptKib.toFixed(1)} KiB prompt)`, median(policy).toFixed(2)],
      ],
    ),
  );
  const file = writeResults('pii', {
    machine: machine(),
    quick,
    corpus: { version: PII_CORPUS_VERSION, seed: PII_CORPUS_SEED, documents: docs.length },
    accuracy: scores,
    cost: { scan_us_per_kib: (scanMs * 1000) / kib, strict_stage_us_per_kib: (stageMs * 1000) / promptKib },
    no_policy: { without_stage_us: median(a), with_stage_us: median(b), paired_diff_us: median(diffs), diff_95: ci, strict_policy_us: median(policy) },
  });
  console.log(`results: ${file}`);
}
