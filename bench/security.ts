// Cost of the security gates on the inference path, all variants in one run, every server in
// its own process (one model server, one egress, one ingress per variant):
//   off        ingress with security off (the embedded demo's setting)
//   gates      API key identity, tenant binding, model isolation, rate limits, and an audit
//              entry fsynced before every answer (group commit)
//   gates+jwt  the same with an RS256 token instead of an API key
//   gates+mtls the same over TLS 1.3 with a client certificate checked against the allowlist
//   gates, refusals audited   every gate, but only refusals and admin actions are audited
//              (`audit.allowedRequests: false`): the gates' own cost without a per-request fsync
//   gates, audit on tmpfs      every request audited to /dev/shm: fsync is free there, so this
//              separates the gates' CPU cost from the disk's (not a durable setting)
// KServe v2 ModelInfer `simple` over gRPC, three ways:
//   paired     one call at a time, to each variant in turn (rotating order): every variant sees
//              the same background load, so on a shared machine this is the p50 comparison the
//              target is judged on
//   open loop  p50/p99 under a fixed rate (interleaved rounds): queueing included
//   closed     req/s with a fixed number in flight
// Target: gates add at most 10% to the p50 of `off`. Writes bench/results/security.json.
// Knobs: SLUICE_BENCH_PAIRED (paired iterations, default 400), SLUICE_BENCH_SECONDS (open-loop
// seconds per variant, default 6), SLUICE_BENCH_ROUNDS (default 3), SLUICE_BENCH_RATE (default
// 100/s), SLUICE_BENCH_CONCURRENCY (default 4).
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fdatasyncSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { verifyAuditFile } from '../src/audit/verify.ts';
import { METHODS } from '../src/kserve/grpc-service.ts';
import { encodeMessage } from '../src/kserve/proto.ts';
import { createKey } from '../src/security/api-key-store.ts';
import { startSluice, type SluiceProcess } from '../scripts/sluice-child.ts';
import { TestCa } from '../test/helpers/pki.ts';
import { closedLoop, type LatencyResult, median, openLoop, pairedLoop, RawGrpcClient, summarize } from './grpc-load.ts';
import { formatTable, writeResults } from './report.ts';

let SECONDS = Number(process.env.SLUICE_BENCH_SECONDS ?? 6);
let ROUNDS = Number(process.env.SLUICE_BENCH_ROUNDS ?? 3);
const RATE = Number(process.env.SLUICE_BENCH_RATE ?? 100);
const CONCURRENCY = Number(process.env.SLUICE_BENCH_CONCURRENCY ?? 4);
let PAIRED = Number(process.env.SLUICE_BENCH_PAIRED ?? 400);
const INFER = METHODS.ModelInfer.path;

interface Variant {
  name: string;
  proc: SluiceProcess;
  client: () => RawGrpcClient;
}

function simpleRequest(): Buffer {
  const int32 = (n: number): Buffer => Buffer.from(new Int32Array(Array.from({ length: n }, (_, i) => i)).buffer);
  return encodeMessage('ModelInferRequest', {
    modelName: 'simple',
    inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [1, 16] },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] },
    ],
    rawInputContents: [int32(16), int32(16)],
  });
}

/** --quick: one 2-second round and 100 paired calls per variant (a smoke run; the knobs above still win). */
function applyQuick(args: readonly string[]): void {
  if (!args.includes('--quick')) return;
  SECONDS = Number(process.env.SLUICE_BENCH_SECONDS ?? 2);
  ROUNDS = Number(process.env.SLUICE_BENCH_ROUNDS ?? 1);
  PAIRED = Number(process.env.SLUICE_BENCH_PAIRED ?? 100);
}

export async function run(args: readonly string[] = []): Promise<void> {
  applyQuick(args);
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-bench-security-'));
  const procs: SluiceProcess[] = [];
  try {
    const key = randomBytes(32).toString('hex');
    const models = await startSluice({ node: { name: 'bench-models' }, models: { listen: { host: '127.0.0.1', port: 0 } } }, { name: 'models' });
    procs.push(models);
    const egress = await startSluice(
      {
        node: { name: 'bench-egress' },
        segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: 0 } } },
        routes: [{ model: '*', upstreams: [{ address: models.endpoints.models! }] }],
      },
      { name: 'egress' },
    );
    procs.push(egress);
    const [segHost, segPort] = egress.endpoints.segment!.split(':') as [string, string];

    // Credentials and certificates for the gated variants.
    const store = path.join(dir, 'keys.json');
    const apiKey = (await createKey(store, { tenant: 'acme', caps: ['infer'] })).key;
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const jwks = path.join(dir, 'jwks.json');
    writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'bench' }] }));
    const now = Math.floor(Date.now() / 1000);
    // One token for the whole run: the maximum lifetime, refreshed per variant start below if needed.
    const token = await new SignJWT({ tenant_id: 'acme', caps: ['infer'], sub: 'bench' }).setProtectedHeader({ alg: 'RS256', kid: 'bench' }).setIssuedAt(now).setExpirationTime(now + 900).sign(privateKey);
    const ca = new TestCa(dir, 'bench-ca');
    const server = ca.issue('sluice', { server: true });
    const agent = ca.issue('bench-agent');
    const allowlist = path.join(dir, 'agents.allow');
    writeFileSync(allowlist, `${agent.fingerprint}\n`);

    const ingress = async (name: string, security: object): Promise<SluiceProcess> => {
      const p = await startSluice(
        {
          node: { name: `bench-${name}` },
          listeners: { grpc: { host: '127.0.0.1', port: 0 } },
          segments: { inference: { transport: 'tcp', key } },
          peers: [{ name: 'egress', segment: 'inference', host: segHost, port: Number(segPort) }],
          routes: [{ model: '*', peers: ['egress'] }],
          security,
        },
        { name },
      );
      procs.push(p);
      return p;
    };
    const shm = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/sluice-bench-') : null;
    const gated = (audit: string, opts: { allowedRequests?: boolean; auditDir?: string } = {}) => ({
      tenants: [{ name: 'acme', id: 17, models: ['simple'] }],
      audit: { enabled: true, path: path.join(opts.auditDir ?? dir, audit), allowedRequests: opts.allowedRequests ?? true },
      apiKeys: { enabled: true, store },
      jwt: { enabled: true, jwksFile: jwks },
      rateLimits: { enabled: true, default: { requestsPerSecond: 100_000, burst: 100_000 } },
    });
    const off = await ingress('off', {});
    const gates = await ingress('gates', gated('gates-audit.jsonl'));
    const gatesJwt = await ingress('gates-jwt', gated('jwt-audit.jsonl'));
    const gatesMtls = await ingress('gates-mtls', {
      ...gated('mtls-audit.jsonl'),
      tls: { enabled: true, certFile: server.cert, keyFile: server.key, clientCerts: { mode: 'require', caFile: ca.cert, allowlistFile: allowlist } },
    });
    const gatesRefusals = await ingress('gates-refusals', gated('refusals-audit.jsonl', { allowedRequests: false }));
    const gatesShm = shm === null ? null : await ingress('gates-shm', gated('shm-audit.jsonl', { auditDir: shm }));
    const tlsCreds = grpc.credentials.createSsl(readFileSync(ca.cert), readFileSync(agent.key), readFileSync(agent.cert));
    const localhost = (a: string) => a.replace('127.0.0.1', 'localhost');
    const variants: Variant[] = [
      { name: 'off', proc: off, client: () => new RawGrpcClient(off.endpoints.grpc!) },
      { name: 'gates (API key)', proc: gates, client: () => new RawGrpcClient(gates.endpoints.grpc!, { metadata: { authorization: `Bearer ${apiKey}` } }) },
      { name: 'gates (JWT)', proc: gatesJwt, client: () => new RawGrpcClient(gatesJwt.endpoints.grpc!, { metadata: { authorization: `Bearer ${token}` } }) },
      {
        name: 'gates + mTLS',
        proc: gatesMtls,
        client: () => new RawGrpcClient(localhost(gatesMtls.endpoints.grpc!), { credentials: tlsCreds, metadata: { authorization: `Bearer ${apiKey}` } }),
      },
      { name: 'gates, refusals audited', proc: gatesRefusals, client: () => new RawGrpcClient(gatesRefusals.endpoints.grpc!, { metadata: { authorization: `Bearer ${apiKey}` } }) },
      ...(gatesShm === null
        ? []
        : [{ name: 'gates, audit on tmpfs', proc: gatesShm, client: () => new RawGrpcClient(gatesShm.endpoints.grpc!, { metadata: { authorization: `Bearer ${apiKey}` } }) }]),
    ];

    const request = simpleRequest();
    const clients = variants.map((v) => v.client());
    for (const c of clients) {
      const until = performance.now() + 700;
      while (performance.now() < until) await c.call(INFER, request);
    }
    const lat: number[][] = variants.map(() => []);
    const errors = variants.map(() => 0);
    const rates: number[][] = variants.map(() => []);
    const perRoundMs = (SECONDS * 1000) / ROUNDS;
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < variants.length; i++) {
        const loop = await closedLoop(clients[i]!, INFER, request, CONCURRENCY, 1000);
        rates[i]!.push(loop.perSecond);
        await new Promise((res) => setTimeout(res, 100));
        const l = await openLoop(clients[i]!, INFER, request, RATE, perRoundMs);
        lat[i]!.push(...l.latencies);
        errors[i]! += l.errors;
      }
    }
    const paired = await pairedLoop(clients, INFER, request, PAIRED);
    for (const c of clients) c.close();

    const results: Record<string, { reqPerSec: number; latency: LatencyResult; paired: LatencyResult }> = {};
    variants.forEach((v, i) => {
      results[v.name] = { reqPerSec: median(rates[i]!), latency: summarize(lat[i]!, RATE, errors[i]!), paired: summarize(paired.latencies[i]!, 0, paired.errors[i]!) };
    });
    const pct = (x: number, base: number) => `${(((x - base) / base) * 100).toFixed(1)}%`;
    const pairedBase = results.off!.paired.p50;
    const openBase = results.off!.latency.p50;
    const rows = variants.map((v) => {
      const r = results[v.name]!;
      const off = v.name === 'off';
      return [
        v.name,
        r.paired.p50.toFixed(3),
        r.paired.p99.toFixed(3),
        off ? '' : pct(r.paired.p50, pairedBase),
        r.latency.p50.toFixed(3),
        r.latency.p99.toFixed(3),
        off ? '' : pct(r.latency.p50, openBase),
        r.reqPerSec.toFixed(0),
        String(r.latency.errors + r.paired.errors),
      ];
    });
    console.log(
      `\nKServe v2 ModelInfer simple over gRPC through a sluice ingress/egress pair. paired: ${PAIRED} calls per variant, one at a time, variants in turn; ` +
        `open loop: ${RATE}/s, ${SECONDS} s per variant in ${ROUNDS} interleaved rounds; req/s with ${CONCURRENCY} in flight; load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores`,
    );
    console.log(formatTable(['variant', 'paired p50 ms', 'paired p99 ms', 'p50 vs off', 'open p50 ms', 'open p99 ms', 'p50 vs off', 'req/s', 'errors'], rows));
    const over = (name: string) => (results[name]!.paired.p50 - pairedBase) / pairedBase;
    const gatedNames = variants.map((v) => v.name).filter((n) => n !== 'off');
    const worst = Math.max(...gatedNames.map(over));
    const verdict =
      `paired p50 over off: ${gatedNames.map((n) => `${n} ${(over(n) * 100).toFixed(1)}%`).join(', ')}; ` + `target <= 10% for every variant: ${worst <= 0.1 ? 'met' : 'NOT met'}`;
    console.log(verdict);
    const fsync = fsyncLatency(dir);
    console.log(`fdatasync of a 300-byte append in the audit directory during this run: p50 ${fsync.p50.toFixed(3)} ms, p99 ${fsync.p99.toFixed(3)} ms`);
    const audits = await Promise.all(['gates-audit.jsonl', 'jwt-audit.jsonl', 'mtls-audit.jsonl', 'refusals-audit.jsonl'].map((f) => verifyAuditFile(path.join(dir, f), { anchorFile: false })));
    console.log(`audit entries written: ${audits.map((a) => `${a.entries}${a.ok ? '' : ' (BROKEN)'}`).join(', ')}`);
    const file = writeResults('security', { paired: PAIRED, rate: RATE, seconds: SECONDS, rounds: ROUNDS, concurrency: CONCURRENCY, results, verdict, fsyncMs: fsync });
    console.log(`results: ${path.relative(process.cwd(), file)}`);
  } finally {
    for (const p of procs.reverse()) await p.stop();
    rmSync(dir, { recursive: true, force: true });
    for (const d of readdirSync('/dev/shm').filter((n) => n.startsWith('sluice-bench-'))) rmSync(path.join('/dev/shm', d), { recursive: true, force: true });
  }
}

/** What one durable append costs on this disk right now (the floor of a per-request audit). */
function fsyncLatency(dir: string): { p50: number; p99: number } {
  const file = path.join(dir, 'fsync-probe');
  const fd = openSync(file, 'a');
  const line = Buffer.alloc(300, 0x61);
  const t: number[] = [];
  try {
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      writeSync(fd, line);
      fdatasyncSync(fd);
      t.push(performance.now() - t0);
    }
  } finally {
    closeSync(fd);
  }
  t.sort((a, b) => a - b);
  return { p50: t[100]!, p99: t[197]! };
}
