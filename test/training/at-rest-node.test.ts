// security.atRest on a receiving node as `sluice serve` composes it (SluiceNode, its training
// thread, real sockets): a gated push from tenant acme lands in the receiver's spool sealed under
// acme's data key (the tenant id of the transfer's frames, named by security.tenants), and Pull
// on the receiver gives the exact bytes back.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { connect } from '../../src/index.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { createKey } from '../../src/security/api-key-store.ts';
import { FileKeyProvider } from '../../src/security/at-rest/file-key-provider.ts';
import { parseSealedSpool } from '../../src/security/at-rest/sealed-spool-format.ts';
import { TenantKeyStore } from '../../src/security/at-rest/tenant-key-store.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dir = tempDir('at-rest-node-');
const keyStore = path.join(dir, 'keys.json');
const logging = new Logging({ level: 'silent', node: 'at-rest-node' });
const any = { host: '127.0.0.1', port: 0 };
const kek = randomBytes(32);
let trainKey = '';
let tx: SluiceNode;
let rx: SluiceNode;

const security = (name: string) => ({
  tenants: [{ name: 'acme', id: 7 }],
  audit: { enabled: true, path: path.join(dir, `${name}-audit.jsonl`), checkpointSeconds: 3600 },
  apiKeys: { enabled: true, store: keyStore },
});

before(async () => {
  trainKey = (await createKey(keyStore, { tenant: 'acme', caps: ['train'] })).key;
  writeFileSync(path.join(dir, 'kek.key'), kek.toString('hex'), { mode: 0o600 });
  const segKey = randomBytes(32).toString('hex');
  rx = new SluiceNode({
    config: parseConfig({
      node: { name: 'rx' },
      listeners: { grpc: any, training: any },
      segments: { training: { transport: 'tcp', key: segKey, listen: any } },
      training: { spoolDir: path.join(dir, 'rx-spool') },
      log: { level: 'silent' },
      security: { ...security('rx'), atRest: { enabled: true, kekFile: path.join(dir, 'kek.key'), keyStore: path.join(dir, 'tenant-keys.json') } },
    }),
    logger: logging.component('rx'),
    transports: defaultTransports,
  });
  await rx.start();
  const [host, port] = rx.endpoints.training!.split(':') as [string, string];
  tx = new SluiceNode({
    config: parseConfig({
      node: { name: 'tx' },
      listeners: { grpc: any, training: any },
      segments: { training: { transport: 'tcp', key: segKey } },
      peers: [{ name: 'rx', segment: 'training', host, port: Number(port) }],
      training: { spoolDir: path.join(dir, 'tx-spool') },
      log: { level: 'silent' },
      security: security('tx'),
    }),
    logger: logging.component('tx'),
    transports: defaultTransports,
  });
  await tx.start();
});

after(async () => {
  await tx?.stop(0);
  await rx?.stop(0);
});

test("a pushed tensor is sealed under the sender tenant's key on the receiver; Pull gives the exact bytes", async () => {
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const trainer = connect(tx.endpoints.trainingService!, { metadata: { 'x-api-key': trainKey } });
  const r = await trainer.push('rx', 'g/sealed', data, { transferId: 'sealed-1' });
  assert.ok(r.sha256.equals(createHash('sha256').update(data).digest()));
  const file = readFileSync(path.join(dir, 'rx-spool', 'sealed-1.tensor'));
  assert.equal(file.subarray(0, 4).toString(), 'SLSP');
  assert.ok(file.indexOf(data.subarray(100_000, 100_064)) < 0, 'no plaintext on disk');
  const store = new TenantKeyStore(path.join(dir, 'tenant-keys.json'), new FileKeyProvider(kek));
  const acme = await store.keyFor('acme', 1);
  const parsed = parseSealedSpool(file, (t, v) => (t === 'acme' && v === 1 ? acme : Buffer.alloc(32)));
  assert.equal(parsed.header.tenant, 'acme');
  assert.ok(Buffer.concat(parsed.records).equals(data));
  const puller = connect(rx.endpoints.trainingService!, { metadata: { 'x-api-key': trainKey } });
  const out = path.join(dir, 'pulled.bin');
  const digest = await puller.pullToFile({ transferId: 'sealed-1' }, out);
  assert.ok(digest.equals(r.sha256));
  assert.ok(readFileSync(out).equals(data));
  // A client cannot claim another tenant: the gate interceptor replaces the header it sets.
  const forger = connect(tx.endpoints.trainingService!, { metadata: { 'x-api-key': trainKey, 'x-sluice-gated-tenant': '99' } });
  await forger.push('rx', 'g/forged', data.subarray(0, 1000), { transferId: 'sealed-2' });
  const forged = readFileSync(path.join(dir, 'rx-spool', 'sealed-2.tensor'));
  assert.equal(parseSealedSpool(forged, () => acme).header.tenant, 'acme');
  trainer.close();
  puller.close();
  forger.close();
});
