// Soak: mixed inference and training through a gated front node for a while, with faults on a
// schedule, then a verdict (issue 14). Every server is its own `sluice serve` process:
//   models : the reference model server
//   egress : inference segment listener (routes to models), training receiver (spool), gRPC;
//            fixed ports so it can be SIGKILLed and restarted in place
//   front  : gRPC over TLS with client certificates (allowlist), API keys, fsynced audit log of
//            every allowed request; inference and training peers = egress, its inference link
//            through a TCP proxy that the schedule cuts
// Load: a closed loop of ModelInfer calls (each with its own x-request-id) and a loop of tensor
// pushes (random 256 KiB - 4 MiB, the client resumes across faults).
// Faults, in turn, every `period`: egress SIGKILL + restart, link cut, key-store reload (a new
// key), allowlist reload (the file rewritten), SIGHUP to front, a slow client (a TLS
// connection trickling an HTTP/2 preface a byte at a time).
// Verdict: front's RSS at the end <= 1.5x after warm-up, open fds at most +5; every
// acknowledged inference call's request id in front's audit log, which verifies (0 lost);
// every transfer completed with the right SHA-256 (checked against the receiver's copy);
// failed inference calls counted by cause. Exits non-zero (throws) when a criterion fails.
//
// npm run bench -- soak [--quick] [--seconds=N]   (default 600 s, --quick 60 s)
import * as grpc from '@grpc/grpc-js';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { verifyAuditFile } from '../src/audit/verify.ts';
import { connect, type SluiceClient } from '../src/index.ts';
import { createKey } from '../src/security/api-key-store.ts';
import { TestCa } from '../test/helpers/pki.ts';
import { startTcpFaultProxy, type TcpFaultProxy } from '../test/helpers/tcp-fault-proxy.ts';
import { closedPort, startSluice, type SluiceProcess } from '../scripts/sluice-child.ts';
import { RawGrpcClient } from './grpc-load.ts';
import { inferRequest } from './infer-request.ts';
import { formatTable, writeResults } from './report.ts';

const INFER_PATH = '/inference.GRPCInferenceService/ModelInfer';
const INFER_CONCURRENCY = 4;

interface ProcSample {
  rssBytes: number;
  fds: number;
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

function sample(pid: number): ProcSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 'NaN');
  return { rssBytes: rssKb * 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
}

function parseSeconds(args: readonly string[]): number {
  const explicit = args.find((a) => a.startsWith('--seconds='));
  if (explicit !== undefined) {
    const s = Number(explicit.slice('--seconds='.length));
    if (!Number.isFinite(s) || s < 20) throw new RangeError(`--seconds must be at least 20, got ${explicit}`);
    return s;
  }
  return args.includes('--quick') ? 60 : 600;
}

/** "UNAVAILABLE: link to egress peer ... closed" -> "UNAVAILABLE link closed": a short cause. */
function causeOf(err: unknown): string {
  const e = err as { code?: number; details?: string; message?: string };
  const code = e.code !== undefined ? (grpc.status[e.code] ?? String(e.code)) : 'ERROR';
  const text = e.details ?? e.message ?? String(err);
  const what = /closed before the reply/.test(text)
    ? 'link closed before the reply'
    : /is down|not ready|unreachable|no live link|no egress|no peer/i.test(text)
      ? 'egress peer down'
      : /deadline|timed out/i.test(text)
        ? 'deadline'
        : text.slice(0, 60);
  return `${code}: ${what}`;
}

export interface SoakResult {
  seconds: number;
  faults: Record<string, number>;
  front: { warm: ProcSample; end: ProcSample; rssRatio: number; fdGrowth: number };
  inference: { ok: number; failed: number; failedByCause: Record<string, number> };
  audit: { verified: boolean; problem: string | null; acknowledged: number; lost: number };
  transfers: { started: number; completed: number; rightSha: number; failed: string[] };
  pass: boolean;
  failures: string[];
}

export async function run(args: readonly string[]): Promise<SoakResult> {
  const seconds = parseSeconds(args);
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-soak-'));
  const procs = new Set<SluiceProcess>();
  let proxy: TcpFaultProxy | undefined;
  const closers: (() => void)[] = [];
  try {
    const infKey = randomBytes(32).toString('hex');
    const trainKey = randomBytes(32).toString('hex');
    const ca = new TestCa(dir, 'soak-ca');
    const serverCert = ca.issue('sluice', { server: true });
    const agent = ca.issue('soak-agent');
    const allowlist = path.join(dir, 'agents.allow');
    writeFileSync(allowlist, `${agent.fingerprint}\n`);
    const store = path.join(dir, 'keys.json');
    const apiKey = (await createKey(store, { tenant: 'acme', caps: ['infer', 'train'] })).key;
    const auditPath = path.join(dir, 'front-audit.jsonl');
    const any = { host: '127.0.0.1', port: 0 };

    const models = await startSluice({ node: { name: 'soak-models' }, models: { listen: any } }, { name: 'models' });
    procs.add(models);
    const [segPort, trainPort, egressGrpcPort] = [await closedPort(), await closedPort(), await closedPort()];
    const egressConfig = {
      node: { name: 'soak-egress' },
      listeners: { grpc: { host: '127.0.0.1', port: egressGrpcPort }, training: { host: '127.0.0.1', port: 0 } },
      segments: {
        inference: { transport: 'tcp', key: infKey, listen: { host: '127.0.0.1', port: segPort } },
        training: { transport: 'tcp', key: trainKey, listen: { host: '127.0.0.1', port: trainPort } },
      },
      routes: [{ model: '*', upstreams: [{ address: models.endpoints.models! }] }],
      training: { spoolDir: path.join(dir, 'egress-spool') },
    };
    const startEgress = async () => {
      const p = await startSluice(egressConfig, { name: 'egress' });
      procs.add(p);
      return p;
    };
    let egress = await startEgress();
    proxy = await startTcpFaultProxy({ host: '127.0.0.1', port: segPort });
    const front = await startSluice(
      {
        node: { name: 'soak-front' },
        listeners: { grpc: any, training: any },
        segments: { inference: { transport: 'tcp', key: infKey }, training: { transport: 'tcp', key: trainKey } },
        peers: [
          { name: 'egress', segment: 'inference', host: '127.0.0.1', port: proxy.port },
          { name: 'egress-training', segment: 'training', host: '127.0.0.1', port: trainPort },
        ],
        routes: [{ model: '*', peers: ['egress'] }],
        training: { spoolDir: path.join(dir, 'front-spool') },
        limits: { defaultTimeoutMs: 5000 },
        security: {
          tenants: [{ name: 'acme', id: 17 }],
          audit: { enabled: true, path: auditPath, allowedRequests: true, anchorSeconds: 1 },
          apiKeys: { enabled: true, store, reloadSeconds: 1 },
          tls: { enabled: true, certFile: serverCert.cert, keyFile: serverCert.key, clientCerts: { mode: 'require', caFile: ca.cert, allowlistFile: allowlist, reloadSeconds: 1 } },
        },
      },
      { name: 'front' },
    );
    procs.add(front);
    const frontPid = front.child.pid!;
    const frontAddr = front.endpoints.grpc!.replace('127.0.0.1', 'localhost');
    const creds = grpc.credentials.createSsl(readFileSync(ca.cert), readFileSync(agent.key), readFileSync(agent.cert));
    const metadata = { authorization: `Bearer ${apiKey}` };

    const started = performance.now();
    const endAt = started + seconds * 1000;
    const warmupMs = Math.max(10_000, seconds * 150);
    let stopping = false;

    // ---- inference: a closed loop, each call with its own request id ----
    const body = inferRequest('simple');
    const acknowledged: string[] = [];
    const failedByCause: Record<string, number> = {};
    let failed = 0;
    const inferClient = new RawGrpcClient(frontAddr, { credentials: creds, metadata });
    closers.push(() => inferClient.close());
    const inferLoop = async (worker: number) => {
      for (let i = 0; !stopping; i++) {
        const requestId = `soak-${worker}-${i}`;
        try {
          await inferClient.call(INFER_PATH, body, 5000, { 'x-request-id': requestId });
          acknowledged.push(requestId);
        } catch (err) {
          failed++;
          const cause = causeOf(err);
          failedByCause[cause] = (failedByCause[cause] ?? 0) + 1;
          await sleep(50); // a failing peer: do not spin
        }
      }
    };

    // ---- training: pushes one after another, resumed by the client across faults ----
    // TensorTransfer is served on listeners.training alone (8001 answers UNIMPLEMENTED).
    const transferAddr = front.endpoints.trainingService!.replace('127.0.0.1', 'localhost');
    const transferClient: SluiceClient = connect(transferAddr, { credentials: creds, metadata });
    closers.push(() => transferClient.close());
    const sent = new Map<string, string>(); // id -> sha256 hex
    const completed = new Map<string, string>();
    const transferFailures: string[] = [];
    const trainLoop = async () => {
      for (let i = 0; !stopping; i++) {
        const data = randomBytes(randomInt(256 * 1024, 4 * 1024 * 1024));
        const id = `soak-t${i}`;
        const sha = createHash('sha256').update(data).digest('hex');
        sent.set(id, sha);
        try {
          const r = await transferClient.push('egress-training', `soak/${i}`, data, { transferId: id, maxAttempts: 20, timeoutMs: 60_000 });
          completed.set(id, r.sha256.toString('hex'));
        } catch (err) {
          transferFailures.push(`${id}: ${(err as Error).message}`);
        }
      }
    };

    // ---- faults on a schedule ----
    const faults: Record<string, number> = {};
    const count = (f: string) => (faults[f] = (faults[f] ?? 0) + 1);
    const slowClient = () =>
      new Promise<void>((resolve) => {
        const [host, port] = front.endpoints.grpc!.split(':') as [string, string];
        const s = tlsConnect({ host, port: Number(port), servername: 'localhost', ca: readFileSync(ca.cert), key: readFileSync(agent.key), cert: readFileSync(agent.cert) });
        const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
        let at = 0;
        const timer = setInterval(() => {
          if (at < preface.length && !s.destroyed) s.write(preface.subarray(at, ++at));
        }, 300);
        const done = () => {
          clearInterval(timer);
          s.destroy();
          resolve();
        };
        s.on('error', done);
        setTimeout(done, 8000);
      });
    const schedule: [string, () => Promise<void>][] = [
      [
        'egress kill + restart',
        async () => {
          egress.child.kill('SIGKILL');
          await egress.stop(1000);
          procs.delete(egress);
          await sleep(1000);
          egress = await startEgress();
        },
      ],
      ['link cut', async () => proxy!.cutAll()],
      ['key-store reload', async () => void (await createKey(store, { tenant: 'acme', caps: ['infer'] }))],
      ['allowlist reload', async () => writeFileSync(allowlist, `${agent.fingerprint}\n${randomBytes(32).toString('hex')}\n`)],
      ['SIGHUP', async () => void front.child.kill('SIGHUP')],
      ['slow client', slowClient],
    ];
    const periodMs = Math.max(4000, Math.floor((seconds * 1000 - warmupMs) / (schedule.length * 2)));
    const faultLoop = async () => {
      await sleep(Math.min(warmupMs / 2, 5000));
      for (let i = 0; performance.now() + periodMs < endAt; i++) {
        const [name, fault] = schedule[i % schedule.length]!;
        count(name);
        await fault();
        await sleep(periodMs);
      }
    };

    const loops = [...Array.from({ length: INFER_CONCURRENCY }, (_, w) => inferLoop(w)), trainLoop()];
    const faultsDone = faultLoop();
    await sleep(warmupMs);
    const warm = sample(frontPid);
    await sleep(Math.max(0, endAt - performance.now()));
    stopping = true;
    await faultsDone;
    await Promise.all(loops);
    // Let closing connections settle before counting what stays open.
    await sleep(2000);
    const end = sample(frontPid);

    // Every acknowledged call's entry is in the log, and the log verifies (front stopped first).
    await front.stop(10_000);
    procs.delete(front);
    const verification = await verifyAuditFile(auditPath);
    const logged = new Set<string>();
    for (const line of readFileSync(auditPath, 'utf8').split('\n')) {
      if (line === '') continue;
      const e = JSON.parse(line) as { request_id: string | null; action: string; outcome: string };
      if (e.request_id !== null && e.outcome === 'success') logged.add(e.request_id);
    }
    const lost = acknowledged.filter((id) => !logged.has(id)).length;

    // Transfers: the receiver's spooled copy has the sender's digest.
    let rightSha = 0;
    for (const [id, sha] of completed) {
      let onDisk = '';
      try {
        onDisk = createHash('sha256').update(readFileSync(path.join(dir, 'egress-spool', `${id}.tensor`))).digest('hex');
      } catch {
        // missing: counted as wrong
      }
      if (sha === sent.get(id) && onDisk === sha) rightSha++;
    }

    const result: SoakResult = {
      seconds,
      faults,
      front: { warm, end, rssRatio: end.rssBytes / warm.rssBytes, fdGrowth: end.fds - warm.fds },
      inference: { ok: acknowledged.length, failed, failedByCause },
      audit: { verified: verification.ok, problem: verification.problem?.message ?? null, acknowledged: acknowledged.length, lost },
      transfers: { started: sent.size, completed: completed.size, rightSha, failed: transferFailures },
      pass: false,
      failures: [],
    };
    const f = result.failures;
    if (result.front.rssRatio > 1.5) f.push(`front RSS grew ${result.front.rssRatio.toFixed(2)}x (limit 1.5x)`);
    if (result.front.fdGrowth > 5) f.push(`front fds grew by ${result.front.fdGrowth} (limit 5)`);
    if (!verification.ok) f.push(`audit log does not verify: ${result.audit.problem}`);
    if (lost > 0) f.push(`${lost} acknowledged inference calls missing from the audit log`);
    if (rightSha !== sent.size) f.push(`${sent.size - rightSha} of ${sent.size} transfers not completed with the right SHA-256: ${transferFailures.slice(0, 3).join('; ')}`);
    if (acknowledged.length === 0) f.push('no inference call succeeded');
    if (Object.keys(faults).length < schedule.length) f.push(`only ${Object.keys(faults).length} of ${schedule.length} fault kinds ran (run longer)`);
    result.pass = f.length === 0;

    console.log(`soak: ${seconds} s, faults ${JSON.stringify(faults)} (loaded machine: numbers are indicative)`);
    console.log(
      formatTable(
        ['measure', 'value', 'limit'],
        [
          ['front RSS after warm-up / end', `${mib(warm.rssBytes)} / ${mib(end.rssBytes)} (${result.front.rssRatio.toFixed(2)}x)`, '<= 1.5x'],
          ['front open fds after warm-up / end', `${warm.fds} / ${end.fds} (${result.front.fdGrowth >= 0 ? '+' : ''}${result.front.fdGrowth})`, '<= +5'],
          ['acknowledged inference calls lost from the audit log', `${lost} of ${acknowledged.length}`, '0'],
          ['audit log verifies (with anchor)', verification.ok ? 'yes' : `no: ${result.audit.problem}`, 'yes'],
          ['transfers with the right SHA-256', `${rightSha} of ${sent.size}`, 'all'],
          ['inference calls ok / failed', `${acknowledged.length} / ${failed}`, ''],
        ],
      ),
    );
    for (const [cause, n] of Object.entries(failedByCause).sort((a, b) => b[1] - a[1])) console.log(`  failed: ${n} x ${cause}`);
    // Only full runs are kept as results; quick ones (CI) leave the tree alone.
    if (seconds >= 600) console.log(`  results: ${writeResults('soak', result)}`);
    if (!result.pass) throw new Error(`soak failed: ${f.join('; ')}`);
    console.log('soak: pass');
    return result;
  } finally {
    for (const c of closers) c();
    await Promise.all([...procs].map((p) => p.stop(5000)));
    await proxy?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
