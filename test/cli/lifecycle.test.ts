// Drain and reload with real child processes and real signals (test/fixtures/drain-app.ts).
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request, type Agent } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { verifyAuditFile } from '../../src/audit/verify.ts';
import { scrape, sampleValue } from '../helpers/prom-text.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const dir = mkdtempSync(path.join(tmpdir(), 'sluice-lifecycle-'));
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function makeCert(name: string): { cert: string; key: string; fingerprint: string } {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`], { stdio: 'ignore' });
  const fp = execFileSync('openssl', ['x509', '-in', cert, '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' });
  return { cert, key, fingerprint: fp.trim().split('=')[1]! };
}

interface App {
  child: ChildProcess;
  port: number;
  opsPort: number;
  audit: string;
  logs: Record<string, unknown>[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

let seq = 0;
async function startApp(configYaml: string, tls: { cert: string; key: string }): Promise<App> {
  const n = seq++;
  const config = path.join(dir, `config-${n}.yaml`);
  const audit = path.join(dir, `audit-${n}.log`);
  writeFileSync(config, configYaml);
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test/fixtures/drain-app.ts')], {
    cwd: root,
    env: { ...process.env, APP_CONFIG: config, APP_CERT: tls.cert, APP_KEY: tls.key, APP_AUDIT: audit, SLUICE_LOG_LEVEL: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  const logs: Record<string, unknown>[] = [];
  let buf = '';
  let startTimer: NodeJS.Timeout | undefined;
  const listening = new Promise<{ port: number; opsPort: number }>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const rec = JSON.parse(line) as Record<string, unknown>;
        logs.push(rec);
        if (rec.msg === 'listening') resolve({ port: rec.port as number, opsPort: rec.opsPort as number });
      }
    });
    void exited.then((e) => reject(new Error(`app exited before listening: ${JSON.stringify(e)}`)));
    // A bound on start-up only (a loaded machine can take a while to load tsx and the app).
    startTimer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('app did not start listening within 60 s'));
    }, 60_000);
  });
  const { port, opsPort } = await listening.finally(() => clearTimeout(startTimer));
  return { child, port, opsPort, audit, logs, exited };
}

interface Reply {
  id: string;
  status: number | string;
  fingerprint?: string;
}

function call(port: number, id: string, ms: number, agent: Agent | false = false): Promise<Reply> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: `/work?id=${id}&ms=${ms}`, rejectUnauthorized: false, agent }, (res) => {
      const fingerprint = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256;
      res.resume();
      res.on('end', () => resolve({ id, status: res.statusCode ?? 0, fingerprint }));
      res.on('error', (e: NodeJS.ErrnoException) => resolve({ id, status: e.code ?? 'error' }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ id, status: e.code ?? 'error' }));
    req.setTimeout(15_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** Request ids in the audit log, after checking the whole chain (and its anchor) verifies. */
async function auditedIds(file: string): Promise<string[]> {
  const v = await verifyAuditFile(file);
  assert.equal(v.ok, true, `audit log verifies: ${JSON.stringify(v.problem)}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), 'audit', 'verify', file], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, `sluice audit verify: ${r.stdout}${r.stderr}`);
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { action: string; request_id?: string | null; requestId?: string | null })
    .filter((e) => e.action === 'infer.request')
    .map((e) => (e.request_id ?? e.requestId)!);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => Promise<boolean> | boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const certA = makeCert('sluice-a');
const certB = makeCert('sluice-b');
const cfg = (grace: number, delay: number, level = 'info'): string =>
  `node: { name: drain-test }\nlifecycle: { drainGraceMs: ${grace}, drainDelayMs: ${delay}, closeTimeoutMs: 2000 }\nlog: { level: ${level} }\n`;

test('SIGTERM under load: in-flight requests finish, none acknowledged is lost, no audit entry is lost', async () => {
  const app = await startApp(cfg(20_000, 400), certA);
  const ops = `http://127.0.0.1:${app.opsPort}`;
  assert.equal((await fetch(`${ops}/readyz`)).status, 200);

  // Each does a TLS handshake first: on a busy machine counting all 24 in flight can take
  // seconds, so they run long enough (7 s and up) to still be there; the grace covers them.
  const inflight = Array.from({ length: 24 }, (_, i) => call(app.port, `a${i}`, 7000 + 50 * i));
  await waitFor('24 requests in flight', async () => sampleValue(await scrape(`${ops}/metrics`), 'sluice_requests_in_flight') === 24, 15_000);

  // Load keeps coming while the drain runs; whatever is refused was never acknowledged.
  let stopLoad = false;
  const late: Promise<Reply>[] = [];
  const load = (async () => {
    for (let i = 0; !stopLoad && i < 400; i++) {
      late.push(call(app.port, `late${i}`, 50));
      await sleep(10);
    }
  })();

  app.child.kill('SIGTERM');
  // During drainDelayMs readiness is already false while the listener still serves.
  await waitFor('readiness off', async () => (await fetch(`${ops}/readyz`)).status === 503);
  assert.match(await (await fetch(`${ops}/readyz`)).text(), /draining/);
  assert.equal(sampleValue(await scrape(`${ops}/metrics`), 'sluice_draining'), 1);

  const exit = await app.exited;
  stopLoad = true;
  await load;
  const replies = [...(await Promise.all(inflight)), ...(await Promise.all(late))];
  assert.deepEqual(exit, { code: 0, signal: null });

  const first = replies.filter((r) => r.id.startsWith('a'));
  assert.deepEqual(first.map((r) => r.status), first.map(() => 200), 'every request in flight at SIGTERM finished');
  const acked = replies.filter((r) => r.status === 200).map((r) => r.id);
  const audited = await auditedIds(app.audit);
  for (const id of acked) assert.ok(audited.includes(id), `acknowledged request ${id} has an audit entry`);
  assert.equal(new Set(audited).size, audited.length, 'no duplicate audit entries');
  for (const r of replies) assert.ok(r.status === 200 || r.status === 503 || r.status === 'ECONNREFUSED' || r.status === 'ECONNRESET', `late request ${r.id}: ${r.status}`);
  assert.ok(replies.some((r) => r.id.startsWith('late') && r.status !== 200), 'load after the listener closed was refused');
  assert.ok(app.logs.some((l) => l.msg === 'drained' && l.clean === true));
});

test('work still running at the grace deadline is handed back with 503, and the process exits on time', async () => {
  const app = await startApp(cfg(400, 0), certA);
  const slow = Array.from({ length: 4 }, (_, i) => call(app.port, `s${i}`, 20_000));
  const quick = call(app.port, 'q', 100);
  // The slow ones are in flight (the quick one may already be done: either way it must succeed).
  await waitFor('in flight', async () => sampleValue(await scrape(`http://127.0.0.1:${app.opsPort}/metrics`), 'sluice_requests_in_flight')! >= 4, 15_000);
  const t0 = Date.now();
  app.child.kill('SIGTERM');
  const exit = await app.exited;
  const took = Date.now() - t0;
  assert.deepEqual(exit, { code: 0, signal: null });
  // Exit code 0 already rules out the backstop (grace + close timeout + 1 s exits 1); this bounds
  // it loosely because the machine may be busy.
  assert.ok(took < 8_000, `exited ${took} ms after SIGTERM with a 400 ms grace`);
  assert.deepEqual((await Promise.all(slow)).map((r) => r.status), [503, 503, 503, 503]);
  assert.equal((await quick).status, 200);
  assert.deepEqual(await auditedIds(app.audit), ['q'], 'handed-back work was never acknowledged nor audited');
});

test('a second SIGTERM during the drain exits at once', async () => {
  const app = await startApp(cfg(30_000, 0), certA);
  const slow = call(app.port, 'slow', 20_000);
  await waitFor('in flight', async () => sampleValue(await scrape(`http://127.0.0.1:${app.opsPort}/metrics`), 'sluice_requests_in_flight') === 1, 15_000);
  app.child.kill('SIGTERM');
  await waitFor('draining', async () => (await fetch(`http://127.0.0.1:${app.opsPort}/readyz`)).status === 503);
  const t0 = Date.now();
  app.child.kill('SIGTERM');
  const exit = await app.exited;
  assert.deepEqual(exit, { code: 143, signal: null });
  // "At once" against a 30 s grace and a 20 s request; loose because the machine may be busy.
  assert.ok(Date.now() - t0 < 10_000, `exited ${Date.now() - t0} ms after the second signal`);
  assert.notEqual((await slow).status, 200);
  assert.ok(app.logs.some((l) => l.msg === 'second stop signal during drain: exiting now'), 'the reason is logged before exiting');
});

test('SIGHUP reloads certificates and the log level without dropping traffic; a bad config changes nothing', async () => {
  const app = await startApp(cfg(2_000, 0), certA);
  const ops = `http://127.0.0.1:${app.opsPort}`;
  assert.equal((await call(app.port, 'before', 0)).fingerprint, certA.fingerprint);
  const spanning = call(app.port, 'spanning', 800); // its connection was set up with cert A

  let stop = false;
  const steady: Promise<Reply>[] = [];
  const load = (async () => {
    for (let i = 0; !stop && i < 300; i++) {
      steady.push(call(app.port, `steady${i}`, 5));
      await sleep(8);
    }
  })();

  // Swap the files in place (rename is atomic, as a Secret volume update is), then reload.
  const cfgFile = path.join(dir, `config-${seq - 1}.yaml`);
  writeFileSync(`${certA.cert}.new`, readFileSync(certB.cert));
  writeFileSync(`${certA.key}.new`, readFileSync(certB.key));
  const origCert = readFileSync(certA.cert);
  const origKey = readFileSync(certA.key);
  renameSync(`${certA.key}.new`, certA.key);
  renameSync(`${certA.cert}.new`, certA.cert);
  writeFileSync(cfgFile, cfg(2_000, 0, 'debug'));
  try {
    app.child.kill('SIGHUP');
    await waitFor('reload', async () => sampleValue(await scrape(`${ops}/metrics`), 'sluice_config_reloads_total', { result: 'success' }) === 1);
    assert.equal((await call(app.port, 'after', 0)).fingerprint, certB.fingerprint, 'new handshakes use the new certificate');
    assert.equal((await spanning).status, 200, 'a request across the reload completes');
    await waitFor('debug logs', () => app.logs.some((l) => l.msg === 'answered' && l.level === 'debug'));

    writeFileSync(cfgFile, 'lifecycle: { drainGraceMs: -1 }\n');
    app.child.kill('SIGHUP');
    await waitFor('failed reload', async () => sampleValue(await scrape(`${ops}/metrics`), 'sluice_config_reloads_total', { result: 'failure' }) === 1);
    assert.ok(app.logs.some((l) => l.msg === 'reload rejected: configuration invalid; keeping the running one'));
    assert.equal((await call(app.port, 'still', 0)).fingerprint, certB.fingerprint);
  } finally {
    writeFileSync(certA.cert, origCert);
    writeFileSync(certA.key, origKey);
  }
  stop = true;
  await load;
  const statuses = (await Promise.all(steady)).map((r) => r.status);
  assert.ok(statuses.length > 10);
  assert.deepEqual(statuses, statuses.map(() => 200), 'no request failed across the reloads');
  app.child.kill('SIGTERM');
  assert.equal((await app.exited).code, 0);
});

test('a reload names the settings that need a restart', async () => {
  const { restartRequiredChanges } = await import('../../src/cli/restart-required.ts');
  const { parseConfigText } = await import('../../src/config/load.ts');
  const a = parseConfigText('listeners: { grpc: { port: 8001 } }\nsegments: { training: { transport: tcp, key: "abababababababababababababababababababababababababababababababab" } }\nlog: { level: info }\n');
  const b = parseConfigText('listeners: { grpc: { port: 9001 } }\nsegments: { training: { transport: rdma, key: "abababababababababababababababababababababababababababababababab" }, inference: { key: "abababababababababababababababababababababababababababababababab" } }\nlog: { level: debug }\n');
  assert.deepEqual(restartRequiredChanges(a, b), ['listeners.grpc', 'segments.inference', 'segments.training.transport']);
  assert.deepEqual(restartRequiredChanges(a, a), []);
});
