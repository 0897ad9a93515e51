// Evidence packs end to end: a real (rotated) audit log and key store, `sluice evidence export`
// and `verify` as subprocesses with RSA and Ed25519 keys, and every tamper case: a flipped byte
// anywhere in the pack, another signer, an entry removed or added, a part added or removed, a
// forged proof, checkpoints absent from the live log. Plus the ustar reader under fast-check.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { AuditLog } from '../../src/audit/log.ts';
import { parseConfig } from '../../src/config/load.ts';
import { controlsFor } from '../../src/evidence/frameworks.ts';
import { buildEvidencePack } from '../../src/evidence/pack.ts';
import { readTar, TarFormatError, writeTar } from '../../src/evidence/tar.ts';
import { verifyEvidencePack } from '../../src/evidence/verify-pack.ts';
import { createKey } from '../../src/security/api-key-store.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const run = promisify(execFile);
const dir = tempDir();
const logFile = path.join(dir, 'audit.jsonl');
const keyStore = path.join(dir, 'keys.json');
const configFile = path.join(dir, 'sluice.yaml');
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');
const pem = (k: KeyObject, type: 'private' | 'public') => k.export({ format: 'pem', type: type === 'private' ? 'pkcs8' : 'spki' }) as string;
let t0: string;
let t1: string;
let apiKey: string;

function cli(...args: string[]) {
  return run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args]).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

const config = () =>
  parseConfig({
    node: { name: 'ev' },
    segments: { inference: { transport: 'tcp', key: 'ab'.repeat(32) } },
    security: {
      tenants: [{ name: 'acme', id: 7 }],
      audit: { enabled: true, path: logFile, adminPath: path.join(dir, 'admin.jsonl'), rotate: { maxBytes: 3000 } },
      apiKeys: { enabled: true, store: keyStore },
      webhooks: { endpoints: [{ url: 'http://127.0.0.1:9/', secret: 's'.repeat(40) }] },
    },
  });

before(async () => {
  apiKey = (await createKey(keyStore, { tenant: 'acme', caps: ['infer', 'admin'] })).key;
  writeFileSync(path.join(dir, 'rsa.pem'), pem(rsa.privateKey, 'private'));
  writeFileSync(path.join(dir, 'rsa.pub.pem'), pem(rsa.publicKey, 'public'));
  writeFileSync(path.join(dir, 'ed.pem'), pem(ed.privateKey, 'private'));
  writeFileSync(path.join(dir, 'ed.pub.pem'), pem(ed.publicKey, 'public'));
  writeFileSync(path.join(dir, 'other.pub.pem'), pem(other.publicKey, 'public'));
  writeFileSync(
    configFile,
    JSON.stringify({
      node: { name: 'ev' },
      security: { tenants: [{ name: 'acme', id: 7 }], audit: { enabled: true, path: logFile, adminPath: path.join(dir, 'admin.jsonl'), rotate: { maxBytes: 3000 } }, apiKeys: { enabled: true, store: keyStore } },
    }),
  );
  const log = await AuditLog.open({ path: logFile, checkpointEntries: 7, checkpointSeconds: 0, rotate: { maxBytes: 3000 } });
  t0 = new Date().toISOString();
  const actions = ['infer.request', 'auth.failed', 'policy.denied', 'keys.rotate', 'pii.flagged', 'train.request', 'tls.client_refused'];
  for (let i = 0; i < 60; i++) await log.append({ tenant: 'acme', requestId: `r${i}`, actor: 'k1', action: actions[i % actions.length]!, outcome: i % 3 === 0 ? 'denied' : 'success', detail: { i } });
  t1 = new Date(Date.now() + 1000).toISOString();
  await log.close();
});

async function pack(keyFile = 'rsa.pem', framework?: string): Promise<Buffer> {
  const out = path.join(dir, `pack-${Math.random().toString(36).slice(2)}.tar`);
  const r = await cli('evidence', 'export', '--config', configFile, '--from', t0, '--to', t1, '--key', path.join(dir, keyFile), '--out', out, ...(framework === undefined ? [] : ['--framework', framework]));
  assert.equal(r.code, 0, r.stderr + r.stdout);
  return readFileSync(out);
}

test('export with RSA (RS256) and Ed25519 (EdDSA); verify exits 0, also against the live log across segments', async () => {
  for (const [k, pub, alg] of [['rsa.pem', 'rsa.pub.pem', 'RS256'], ['ed.pem', 'ed.pub.pem', 'EdDSA']] as const) {
    const p = await pack(k);
    const members = new Map(readTar(p).map((e) => [e.name, e.data]));
    assert.deepEqual([...members.keys()], ['manifest.json', 'manifest.jws', 'audit/entries.jsonl', 'audit/proofs.json', 'checkpoints.json', 'policy/config.json', 'policy/versions.json', 'keys.json', 'metrics.txt']);
    const header = JSON.parse(Buffer.from(members.get('manifest.jws')!.toString().split('.')[0]!, 'base64url').toString()) as Record<string, unknown>;
    assert.equal(header.alg, alg);
    assert.equal(header.b64, false);
    assert.deepEqual(header.crit, ['b64']);
    assert.equal(typeof header.iat, 'number');
    const manifest = JSON.parse(members.get('manifest.json')!.toString()) as { entries: { count: number }; log: { segments: unknown[] } };
    assert.ok(manifest.entries.count >= 50, `${manifest.entries.count}`);
    assert.ok(manifest.log.segments.length > 1, 'the log was rotated and read across segments');
    const file = path.join(dir, `ok-${alg}.tar`);
    writeFileSync(file, p);
    const v = await cli('evidence', 'verify', file, '--key', path.join(dir, pub), '--audit', logFile);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /ok, \d+ entries/);
  }
});

test('keys.json holds ids, tenants, caps, states and never a hash or a key; config snapshot has no secrets', async () => {
  const p = await pack();
  const members = new Map(readTar(p).map((e) => [e.name, e.data.toString()]));
  const keys = JSON.parse(members.get('keys.json')!) as Record<string, unknown>[];
  assert.deepEqual(Object.keys(keys[0]!).sort(), ['caps', 'created_at', 'id', 'state', 'tenant']);
  assert.equal(keys[0]!.state, 'active');
  const store = readFileSync(keyStore, 'utf8');
  const hash = (JSON.parse(store) as { keys?: { hash: string }[] } | { hash: string }[]);
  const hashes = (Array.isArray(hash) ? hash : hash.keys ?? []).map((k) => k.hash);
  for (const part of members.values()) {
    for (const h of hashes) assert.ok(!part.includes(h), 'a key hash leaked');
    assert.ok(!part.includes(apiKey));
  }
  // The in-process export with secrets in the config: they are redacted.
  const built = await buildEvidencePack({ config: config(), from: new Date(t0), to: new Date(t1), framework: null, signingKey: ed.privateKey, metricsText: '' });
  const cfgPart = readTar(built.tar).find((e) => e.name === 'policy/config.json')!.data.toString();
  assert.ok(!cfgPart.includes('ab'.repeat(32)) && !cfgPart.includes('s'.repeat(40)));
  assert.match(cfgPart, /\[REDACTED\]/);
});

test('framework filter keeps only entries mapped to its controls', async () => {
  const p = await pack('ed.pem', 'eu-ai-act-art10');
  const entries = readTar(p).find((e) => e.name === 'audit/entries.jsonl')!.data.toString().trim().split('\n').map((l) => JSON.parse(l) as { action: string });
  assert.ok(entries.length > 0);
  for (const e of entries) assert.ok(controlsFor(e.action, 'eu-ai-act-art10').length > 0, e.action);
  assert.ok(!entries.some((e) => e.action === 'tls.client_refused'));
  const manifest = JSON.parse(readTar(p)[0]!.data.toString()) as { controls: Record<string, unknown> };
  assert.ok('Art.10(5)' in manifest.controls);
});

test('tamper: a flipped byte anywhere fails and names a part', async () => {
  const p = await pack('ed.pem');
  const key = ed.publicKey;
  assert.equal((await verifyEvidencePack(p, key)).ok, true);
  const step = Math.max(1, Math.floor(p.length / 400));
  let checked = 0;
  for (let i = 0; i < p.length; i += step) {
    const bad = Buffer.from(p);
    bad[i] = bad[i]! ^ 0x01;
    const v = await verifyEvidencePack(bad, key);
    assert.equal(v.ok, false, `flipping byte ${i} went unnoticed`);
    assert.ok(v.problem!.part.length > 0);
    checked++;
  }
  assert.ok(checked >= 300);
  // The two bytes a stepped sweep can miss and a lenient reader would let pass: the spare low
  // bits of the signature's last base64url character, and the JWS file's final newline.
  const members0 = readTar(p);
  const jws = members0.find((m) => m.name === 'manifest.jws')!;
  for (const at of [jws.data.length - 2, jws.data.length - 1]) {
    const ms = readTar(p);
    const j = ms.find((m) => m.name === 'manifest.jws')!;
    j.data[at] = j.data[at]! ^ 0x01;
    const v = await verifyEvidencePack(writeTar(ms), key);
    assert.equal(v.ok, false, `flipping byte ${at} of manifest.jws went unnoticed`);
  }
  // And through the CLI: exit 1 naming the part.
  const members = readTar(p);
  const e = members.find((m) => m.name === 'audit/entries.jsonl')!;
  e.data[20] = e.data[20]! ^ 0x02;
  const file = path.join(dir, 'flipped.tar');
  writeFileSync(file, writeTar(members));
  const r = await cli('evidence', 'verify', file, '--key', path.join(dir, 'ed.pub.pem'));
  assert.equal(r.code, 1);
  assert.match(r.stdout, /FAILED: audit\/entries\.jsonl: SHA-256 does not match/);
});

test('tamper: another signer, an entry removed, an entry added, a part added or removed, a forged proof', async () => {
  const p = await pack('ed.pem');
  const otherSigner = await verifyEvidencePack(p, other.publicKey);
  assert.deepEqual(otherSigner.problem?.part, 'manifest.jws');
  assert.match(otherSigner.problem!.message, /signed by another key/);
  const rsaSigned = await verifyEvidencePack(await pack('rsa.pem'), ed.publicKey);
  assert.equal(rsaSigned.ok, false);

  const edit = (f: (m: { name: string; data: Buffer }[]) => void) => {
    const m = readTar(p);
    f(m);
    return writeTar(m);
  };
  const entriesOf = (m: { name: string; data: Buffer }[]) => m.find((x) => x.name === 'audit/entries.jsonl')!;
  const removed = await verifyEvidencePack(
    edit((m) => {
      const e = entriesOf(m);
      const ls = e.data.toString().split('\n');
      ls.splice(3, 1);
      e.data = Buffer.from(ls.join('\n'));
    }),
    ed.publicKey,
  );
  assert.equal(removed.problem?.part, 'audit/entries.jsonl');
  assert.match(removed.problem!.message, /entry seq \d+ removed/);
  const added = await verifyEvidencePack(
    edit((m) => {
      const e = entriesOf(m);
      const first = e.data.toString().split('\n')[0]!;
      e.data = Buffer.concat([e.data, Buffer.from(`${first.replace(/^\{"seq":\d+/, '{"seq":9999')}\n`)]);
    }),
    ed.publicKey,
  );
  assert.match(added.problem!.message, /entry seq 9999 added/);
  const extra = await verifyEvidencePack(edit((m) => m.push({ name: 'audit/extra.jsonl', data: Buffer.from('{}\n') })), ed.publicKey);
  assert.deepEqual(extra.problem, { part: 'audit/extra.jsonl', message: 'is not listed in the manifest (added to the pack)' });
  const gone = await verifyEvidencePack(edit((m) => m.splice(m.findIndex((x) => x.name === 'keys.json'), 1)), ed.publicKey);
  assert.equal(gone.problem?.part, 'keys.json');
  const noSig = await verifyEvidencePack(edit((m) => m.splice(1, 1)), ed.publicKey);
  assert.equal(noSig.problem?.part, 'manifest.jws');
});

test('--audit LOG: checkpoints must be in the live log', async () => {
  const p = await pack('ed.pem');
  assert.equal((await verifyEvidencePack(p, ed.publicKey, { auditLog: logFile })).ok, true);
  const otherLog = path.join(tempDir(), 'audit.jsonl');
  const log = await AuditLog.open({ path: otherLog, checkpointEntries: 7, checkpointSeconds: 0 });
  for (let i = 0; i < 60; i++) await log.append({ tenant: 'acme', requestId: `x${i}`, actor: 'k1', action: 'infer.request', outcome: 'success' });
  await log.close();
  const v = await verifyEvidencePack(p, ed.publicKey, { auditLog: otherLog });
  assert.equal(v.problem?.part, 'checkpoints.json');
  assert.match(v.problem!.message, /differs from the live log|not in the live log/);
});

test('property: the ustar reader takes any bytes without crashing; writer and reader round-trip', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), (bytes) => {
      try {
        readTar(Buffer.from(bytes));
      } catch (err) {
        assert.ok(err instanceof TarFormatError, String(err));
      }
    }),
    { numRuns: 300 },
  );
  const nameArb = fc.stringMatching(/^[a-z][a-z0-9_./-]{0,40}$/).filter((n) => !n.split('/').includes('..') && !n.endsWith('/') && !n.includes('//'));
  fc.assert(
    fc.property(fc.uniqueArray(fc.record({ name: nameArb, data: fc.uint8Array({ maxLength: 1500 }) }), { selector: (e) => e.name, maxLength: 6 }), fc.nat({ max: 5000 }), (entries, flip) => {
      const tar = writeTar(entries.map((e) => ({ name: e.name, data: Buffer.from(e.data) })));
      assert.deepEqual(readTar(tar).map((e) => [e.name, [...e.data]]), entries.map((e) => [e.name, [...e.data]]));
      // A flipped bit anywhere is refused or changes a member's bytes (which the manifest catches).
      const bad = Buffer.from(tar);
      const i = flip % bad.length;
      bad[i] = bad[i]! ^ 0x80;
      try {
        const back = readTar(bad);
        assert.notDeepEqual(back.map((e) => [e.name, [...e.data]]), entries.map((e) => [e.name, [...e.data]]));
      } catch (err) {
        assert.ok(err instanceof TarFormatError);
      }
    }),
    { numRuns: 200 },
  );
});
