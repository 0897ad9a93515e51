// Cost of encryption at rest on the training spool: a tensor received in 1 MiB chunks through
// the real spool sink (SpoolSink, in offset order, as the training thread writes) and read back
// through the spool's reader (what Pull streams), plaintext vs sealed under a tenant data key
// (security.atRest), in alternating rounds so a busy spell hits both. Sealing runs on this
// thread like on the training thread. The spool lives in the OS temp dir (page cache; the
// final fsync of complete() is included). Options: --quick (64 MiB, 3 rounds).
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { encodeSpoolHeader, SpoolRecordOpener, SpoolRecordSealer } from '../src/security/at-rest/sealed-spool-format.ts';
import { FileKeyProvider } from '../src/security/at-rest/file-key-provider.ts';
import { TenantKeyStore } from '../src/security/at-rest/tenant-key-store.ts';
import { Spool } from '../src/training/spool.ts';
import { SpoolSink } from '../src/training/tensor-sink.ts';
import { formatTable, median, writeResults } from './report.ts';

const MiB = 1024 * 1024;

async function once(spool: Spool, id: string, data: Buffer, sealed: boolean): Promise<{ write: number; read: number }> {
  const t0 = performance.now();
  const partial = await spool.create(id, 'bench', { name: 'w', datatype: 'UINT8', shape: [data.length], attributes: {} }, data.length, sealed ? 'acme' : undefined);
  const sink = new SpoolSink(spool, id, partial.handle, () => undefined, partial.sealed);
  const writes: Promise<void>[] = [];
  for (let o = 0; o < data.length; o += MiB) writes.push(sink.write(o, data.subarray(o, o + MiB)));
  await Promise.all(writes);
  await sink.complete(createHash('sha256').update(data).digest());
  const t1 = performance.now();
  let n = 0;
  for await (const c of spool.reader(spool.completedRecord(id)!, 0, MiB)) n += c.length;
  const t2 = performance.now();
  if (n !== data.length) throw new Error(`read ${n} of ${data.length} bytes`);
  await spool.discard(id);
  return { write: data.length / MiB / ((t1 - t0) / 1000), read: data.length / MiB / ((t2 - t1) / 1000) };
}

/**
 * The cipher alone, in memory: seal and open 1 MiB records (no file I/O), in MiB per CPU-second
 * of this process (on a shared machine the wall clock mostly measures the other tenants).
 */
function cipherOnly(data: Buffer): { seal: number; open: number } {
  const key = randomBytes(32);
  const hb = encodeSpoolHeader({ tenant: 'acme', transferId: 'bench' });
  const sealer = new SpoolRecordSealer(hb, key, 1);
  const opener = new SpoolRecordOpener(hb, key);
  const scratch = Buffer.allocUnsafe(MiB + 64);
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  let sealSec = 0;
  let openSec = 0;
  for (let o = 0; o < data.length; o += MiB) {
    const t0 = cpu();
    const rec = sealer.seal(o, data.subarray(o, o + MiB), scratch);
    const t1 = cpu();
    opener.open(rec);
    openSec += cpu() - t1;
    sealSec += t1 - t0;
  }
  const mib = data.length / MiB;
  return { seal: mib / sealSec, open: mib / openSec };
}

export async function run(args: readonly string[]): Promise<unknown> {
  const quick = args.includes('--quick');
  const bytes = (quick ? 64 : 512) * MiB;
  const rounds = quick ? 3 : 7;
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-at-rest-bench-'));
  try {
    const store = new TenantKeyStore(path.join(dir, 'keys.json'), new FileKeyProvider(randomBytes(32)));
    await store.activeKey('acme');
    // Only the sealed spool gets keys; the plain one is what a node without atRest runs.
    const plain = new Spool(path.join(dir, 'plain'));
    const sealed = new Spool(path.join(dir, 'sealed'), store);
    await plain.init();
    await sealed.init();
    const data = randomBytes(bytes);
    const r = { plain: { write: [] as number[], read: [] as number[] }, sealed: { write: [] as number[], read: [] as number[] }, cipher: { seal: [] as number[], open: [] as number[] } };
    for (let i = 0; i < rounds; i++) {
      for (const kind of i % 2 === 0 ? (['plain', 'sealed'] as const) : (['sealed', 'plain'] as const)) {
        const m = await once(kind === 'plain' ? plain : sealed, `r${i}`, data, kind === 'sealed');
        r[kind].write.push(m.write);
        r[kind].read.push(m.read);
      }
      const c = cipherOnly(data);
      r.cipher.seal.push(c.seal);
      r.cipher.open.push(c.open);
    }
    const results = {
      bytes,
      rounds,
      chunkBytes: MiB,
      plain: { writeMBps: median(r.plain.write), readMBps: median(r.plain.read) },
      sealed: { writeMBps: median(r.sealed.write), readMBps: median(r.sealed.read) },
      cipherOnly: { sealMBps: median(r.cipher.seal), openMBps: median(r.cipher.open) },
      samples: r,
    };
    const f = (x: number) => x.toFixed(0);
    console.log(formatTable(['spool', 'write MiB/s', 'read MiB/s'], [['plaintext', f(results.plain.writeMBps), f(results.plain.readMBps)], ['sealed (atRest)', f(results.sealed.writeMBps), f(results.sealed.readMBps)], ['cipher only, per CPU-second (seal / open)', f(results.cipherOnly.sealMBps), f(results.cipherOnly.openMBps)]]));
    if (!quick) writeResults('at-rest', results);
    return results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
