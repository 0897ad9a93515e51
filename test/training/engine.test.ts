// The transfer engine end to end between two nodes over real TCP links on loopback: ordering,
// windows, resume after cut connections, corrupted chunks and frames, a receiver process that is
// killed and restarted, refusals. The receiving node decrypts chunks into a pooled receive
// buffer set (as the training thread does); after every test, faults included, each buffer is back.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { Listener } from '../../src/transport/types.ts';
import { TransferError } from '../../src/training/errors.ts';
import type { ReceiveEvent, Subscriber } from '../../src/training/receive-events.ts';
import { TrainingNode, type TrainingLimits } from '../../src/training/training-node.ts';
import { MAX_CHUNK_HEADER_BYTES } from '../../src/training/peer-messages.ts';
import { ReceivePool } from '../../src/wire/receive-pool.ts';
import { startTcpFaultProxy, type ConnectionFault, type TcpFaultProxy } from '../helpers/tcp-fault-proxy.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const KEY = randomBytes(32);
const KiB = 1024;
const MiB = 1024 * KiB;
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

interface Setup {
  a: TrainingNode;
  b: TrainingNode;
  listener: Listener;
  proxy: TcpFaultProxy | undefined;
  spoolB: string;
  pool: ReceivePool;
  close(): Promise<void>;
}

/** Waits (bounded) until every pooled buffer is back: a buffer still out after the close is a leak. */
async function assertPoolFull(pool: ReceivePool): Promise<void> {
  const deadline = Date.now() + 5000;
  while (pool.inUse > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(pool.inUse, 0, `${pool.inUse} receive buffers never released`);
  assert.equal(pool.available, pool.slabs);
}

/** Node b listens on a real TCP training listener; node a reaches it directly or through a fault proxy. */
async function setup(opts: { limits?: Partial<TrainingLimits>; faults?: (conn: number) => ConnectionFault; corruptChunk?: (id: string, offset: number) => boolean } = {}): Promise<Setup> {
  const transport = new TcpTransport();
  const spoolB = await tempDir('sluice-b-');
  const b = new TrainingNode({ nodeName: 'b', transport, segmentKey: KEY, peers: [], spoolDir: spoolB, limits: opts.limits });
  await b.start();
  // Small chunks here (64 KiB by default): slabs of 1 MiB as in production, a few of them.
  const pool = new ReceivePool({ slabBytes: MiB + MAX_CHUNK_HEADER_BYTES, slabs: 8 });
  const listener = await new TcpTransport({ link: { receivePool: pool } }).listen({ segment: 'training', host: '127.0.0.1', port: 0, segmentKey: KEY });
  listener.on('link', (l) => b.attachLink(l));
  const proxy = opts.faults ? await startTcpFaultProxy({ host: '127.0.0.1', port: listener.address.port }, opts.faults) : undefined;
  const peers = [
    { name: 'b', segment: 'training' as const, host: '127.0.0.1', port: proxy?.port ?? listener.address.port },
    { name: 'egress', segment: 'inference' as const, host: '127.0.0.1', port: 7470 },
  ];
  const a = new TrainingNode({
    nodeName: 'a',
    transport,
    segmentKey: KEY,
    peers,
    spoolDir: await tempDir('sluice-a-'),
    limits: { resumeTimeoutMs: 5000, ...opts.limits },
    ...(opts.corruptChunk ? { corruptChunk: opts.corruptChunk } : {}),
  });
  await a.start();
  return {
    a,
    b,
    listener,
    proxy,
    spoolB,
    pool,
    async close() {
      await a.close();
      await b.close();
      await listener.close();
      await proxy?.close();
      await assertPoolFull(pool);
    },
  };
}

/** What a producer does: wait for the offset, write chunks as the window allows, finish. */
async function produce(
  node: TrainingNode,
  data: Buffer,
  opts: { id?: string; chunk?: number; resume?: boolean; sink?: 'spool' | 'stream'; name?: string; onChunk?: (offset: number) => void } = {},
) {
  const handle = node.push({
    peer: 'b',
    tensor: { name: opts.name ?? 'grad/w', datatype: 'UINT8', shape: [data.length], attributes: { step: '1' } },
    total: data.length,
    ...(opts.id ? { transferId: opts.id } : {}),
    ...(opts.resume ? { resume: true } : {}),
    ...(opts.sink ? { sink: opts.sink } : {}),
  });
  const chunk = opts.chunk ?? 64 * KiB;
  let offset = await handle.offset;
  while (offset < data.length) {
    await handle.transfer.waitForSpace();
    const n = Math.min(chunk, data.length - offset);
    handle.transfer.write(offset, data.subarray(offset, offset + n));
    offset += n;
    opts.onChunk?.(offset);
  }
  handle.transfer.finish(createHash('sha256').update(data).digest());
  return { handle, result: await handle.transfer.done };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('a tensor arrives whole in the spool with its SHA-256 checked, and reads back from an offset', async () => {
  const s = await setup({ limits: { windowBytes: 256 * KiB } });
  const data = randomBytes(3 * MiB + 123);
  const { result } = await produce(s.a, data, { id: 'whole-1' });
  assert.equal(result.sha256.toString('hex'), sha(data));
  assert.equal(result.resumes, 0);
  assert.equal(sha(await readFile(path.join(s.spoolB, 'whole-1.tensor'))), sha(data));
  assert.equal(s.b.status('whole-1').state, 'completed');
  assert.equal(s.a.status('whole-1').state, 'completed');
  const reader = await s.b.read({ name: 'grad/w' }, 1000);
  const parts: Buffer[] = [];
  for await (const c of reader.chunks) parts.push(c);
  assert.equal(sha(Buffer.concat(parts)), sha(data.subarray(1000)));
  await s.close();
});

test('connections cut in the middle: the transfer resumes from the last acknowledged offset', async () => {
  // The first two connections die after 1.5 MiB and 1 MiB; the third is left alone.
  const s = await setup({ limits: { windowBytes: 512 * KiB }, faults: (n) => (n === 0 ? { cutAfter: 1.5 * MiB } : n === 1 ? { cutAfter: MiB } : {}) });
  const data = randomBytes(4 * MiB);
  const { result } = await produce(s.a, data, { id: 'cut-1' });
  assert.ok((s.proxy?.connections ?? 0) >= 3, `connections ${s.proxy?.connections}`);
  assert.ok(result.resumes >= 2, `resumes ${result.resumes}`);
  assert.equal(result.sha256.toString('hex'), sha(data));
  assert.equal(sha(await readFile(path.join(s.spoolB, 'cut-1.tensor'))), sha(data));
  await s.close();
});

test('a byte flipped on the wire: the AEAD rejects the frame, the link fails, the transfer resumes', async () => {
  const s = await setup({ limits: { windowBytes: 256 * KiB }, faults: (n) => (n === 0 ? { flipAt: 700 * KiB } : {}) });
  const data = randomBytes(2 * MiB);
  const { result } = await produce(s.a, data, { id: 'flip-1' });
  assert.ok(result.resumes >= 1);
  assert.equal(sha(await readFile(path.join(s.spoolB, 'flip-1.tensor'))), sha(data));
  await s.close();
});

test('a chunk corrupted before sealing is caught by its CRC and re-sent', async () => {
  const corrupted = new Set<number>();
  const s = await setup({
    limits: { windowBytes: 256 * KiB },
    corruptChunk: (_id, offset) => {
      if ((offset === 128 * KiB || offset === 640 * KiB) && !corrupted.has(offset)) {
        corrupted.add(offset);
        return true;
      }
      return false;
    },
  });
  const data = randomBytes(MiB);
  const { result } = await produce(s.a, data, { id: 'crc-1' });
  assert.equal(corrupted.size, 2);
  assert.ok(result.resentChunks >= 2 && result.resumes === 0);
  assert.equal(sha(await readFile(path.join(s.spoolB, 'crc-1.tensor'))), sha(data));
  await s.close();
});

test('a chunk corrupted on every send fails the transfer with DATA_LOSS', async () => {
  const s = await setup({ limits: { maxCorruptChunks: 3 }, corruptChunk: (_id, offset) => offset === 0 });
  await assert.rejects(produce(s.a, randomBytes(200 * KiB), { id: 'crc-2' }), (err: TransferError) => err.status === 'DATA_LOSS' && /corrupted/.test(err.message));
  await s.close();
});

async function startReceiver(port: number, spool: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'receiver-child.ts'), String(port), spool, KEY.toString('hex')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(createInterface({ input: child.stdout as NodeJS.ReadableStream }), 'line')) as [string];
  return { child, port: (JSON.parse(line) as { port: number }).port };
}

test('the receiver process is killed mid-transfer and restarted: the transfer resumes from its spool', async () => {
  const spool = await tempDir('sluice-rx-');
  let rx = await startReceiver(0, spool);
  const transport = new TcpTransport();
  const a = new TrainingNode({
    nodeName: 'a',
    transport,
    segmentKey: KEY,
    peers: [{ name: 'b', segment: 'training', host: '127.0.0.1', port: rx.port }],
    spoolDir: await tempDir('sluice-a-'),
    limits: { windowBytes: 512 * KiB, resumeTimeoutMs: 20_000 },
  });
  await a.start();
  const data = randomBytes(8 * MiB);
  let killed = false;
  let restarted: Promise<void> | undefined;
  const { handle, result } = await produce(a, data, {
    id: 'restart-1',
    onChunk: (off) => {
      if (off >= 3 * MiB && !killed) {
        killed = true;
        rx.child.kill('SIGKILL');
        restarted = once(rx.child, 'exit').then(async () => {
          rx = await startReceiver(rx.port, spool);
        });
      }
    },
  });
  await restarted;
  assert.ok(killed && result.resumes >= 1, `resumes ${result.resumes}`);
  assert.equal(handle.transfer.state, 'completed');
  assert.equal(sha(await readFile(path.join(spool, 'restart-1.tensor'))), sha(data));
  rx.child.kill('SIGKILL');
  await a.close();
});

test('stream sink: a subscriber gets begin, the data in order, and end with the digest', async () => {
  const s = await setup({ limits: { windowBytes: 128 * KiB } });
  const events: ReceiveEvent[] = [];
  const sub: Subscriber = { namePrefix: 'act/', includeSpooled: false, closed: false, send: async (e) => void events.push('data' in e ? { data: { ...e.data, data: Buffer.from(e.data.data) } } : e) };
  s.b.subscribe(sub);
  const data = randomBytes(600 * KiB);
  await produce(s.a, data, { id: 'stream-1', sink: 'stream', name: 'act/x' });
  const begin = events[0];
  assert.ok(begin && 'begin' in begin && begin.begin.tensor.name === 'act/x');
  const bytes = Buffer.concat(events.flatMap((e) => ('data' in e ? [e.data.data] : [])));
  assert.equal(sha(bytes), sha(data));
  const end = events.at(-1);
  assert.ok(end && 'end' in end && end.end.sha256.toString('hex') === sha(data));
  assert.deepEqual(await readdir(s.spoolB), [], 'a stream-sink tensor leaves nothing on disk');
  await assert.rejects(produce(s.a, data, { id: 'stream-2', sink: 'stream', name: 'other/x' }), (err: TransferError) => err.status === 'FAILED_PRECONDITION' && /no subscriber/.test(err.message));
  await s.close();
});

test('pooled receive buffers: the link is killed while chunks are out (a slow subscriber holds them); every buffer comes back', async () => {
  // The first connection dies 1 MiB in, while the subscriber still holds chunks it was given.
  const s = await setup({ limits: { windowBytes: 512 * KiB }, faults: (n) => (n === 0 ? { cutAfter: MiB } : {}) });
  const parts: Buffer[] = [];
  let maxInUse = 0;
  const sub: Subscriber = {
    namePrefix: 'slow/',
    includeSpooled: false,
    closed: false,
    send: async (e) => {
      if (!('data' in e)) return;
      maxInUse = Math.max(maxInUse, s.pool.inUse);
      await new Promise((r) => setTimeout(r, 5));
      parts.push(Buffer.from(e.data.data));
    },
  };
  s.b.subscribe(sub);
  const data = randomBytes(3 * MiB);
  const { result } = await produce(s.a, data, { id: 'pool-cut-1', sink: 'stream', name: 'slow/x' });
  assert.ok(result.resumes >= 1, `resumes ${result.resumes}`);
  assert.equal(sha(Buffer.concat(parts)), sha(data));
  assert.ok(maxInUse >= 1, 'chunks were handed over in pooled buffers');
  assert.equal(s.pool.oneOffAllocations, 0);
  await s.close(); // asserts the pool is full again
});

test('unknown peers and inference-segment peers are refused with clear errors', async () => {
  const audits: string[] = [];
  const a = new TrainingNode({
    nodeName: 'a',
    transport: new TcpTransport(),
    segmentKey: KEY,
    peers: [
      { name: 'b', segment: 'training', host: '127.0.0.1', port: 1 },
      { name: 'egress', segment: 'inference', host: '127.0.0.1', port: 7470 },
    ],
    spoolDir: await tempDir('sluice-a-'),
    onAudit: (e) => audits.push(e.action),
  });
  const tensor = { name: 'x', datatype: 'FP32', shape: [1], attributes: {} };
  assert.throws(() => a.push({ peer: 'nope', tensor, total: 4 }), (err: TransferError) => err.status === 'NOT_FOUND' && err.message === 'unknown peer "nope"; training peers: b');
  assert.throws(
    () => a.push({ peer: 'egress', tensor, total: 4 }),
    (err: TransferError) => err.status === 'FAILED_PRECONDITION' && /is on the inference segment; training transfers travel only on the training segment/.test(err.message),
  );
  assert.deepEqual(audits, ['training.transfer.refused']);
  assert.throws(() => a.push({ peer: 'b', tensor: { ...tensor, name: '../etc' }, total: 4, transferId: 'x/y' }), (err: TransferError) => err.status === 'INVALID_ARGUMENT');
  assert.throws(() => a.push({ peer: 'b', tensor, total: 0 }), /total_bytes must be between 1 and/);
  assert.throws(() => a.push({ peer: 'b', tensor: { ...tensor, shape: [2.5] }, total: 4 }), /tensor shape must be at most 32 integer dimensions/);
  await a.close();
});

test('an inference-segment link handed to the training node is refused and closed', async () => {
  const transport = new TcpTransport();
  const audits: string[] = [];
  const node = new TrainingNode({ nodeName: 'b', transport, segmentKey: KEY, peers: [], spoolDir: await tempDir('sluice-b-'), onAudit: (e) => audits.push(e.action) });
  const listener = await transport.listen({ segment: 'inference', host: '127.0.0.1', port: 0, segmentKey: KEY });
  listener.on('link', (l) => node.attachLink(l));
  const link = await transport.connect({ segment: 'inference', host: '127.0.0.1', port: listener.address.port, segmentKey: KEY });
  await once(link, 'close');
  assert.deepEqual(audits, ['training.link.refused']);
  await listener.close();
  await node.close();
});

test('an unreachable peer fails the transfer with UNAVAILABLE after the resume timeout', async () => {
  const s = await setup({ limits: { resumeTimeoutMs: 400 } });
  await s.listener.close();
  const a2 = new TrainingNode({
    nodeName: 'a2',
    transport: new TcpTransport(),
    segmentKey: KEY,
    peers: [{ name: 'b', segment: 'training', host: '127.0.0.1', port: s.listener.address.port }],
    spoolDir: await tempDir('sluice-a-'),
    limits: { resumeTimeoutMs: 400 },
  });
  await assert.rejects(produce(a2, randomBytes(1000), { id: 'unreach-1' }), (err: TransferError) => err.status === 'UNAVAILABLE' && /unreachable/.test(err.message));
  await a2.close();
  await s.close();
});

test('a producer that goes away can resume on the same node from where it stopped', async () => {
  const s = await setup({ limits: { windowBytes: 256 * KiB } });
  const data = randomBytes(MiB);
  const tensor = { name: 'w', datatype: 'UINT8', shape: [data.length], attributes: {} };
  const first = s.a.push({ peer: 'b', tensor, total: data.length, transferId: 'res-1' });
  await first.offset;
  first.transfer.write(0, data.subarray(0, 200 * KiB));
  first.transfer.producerAttached = false; // its Push stream ended here
  assert.throws(() => s.a.push({ peer: 'b', tensor, total: data.length, transferId: 'res-1' }), (err: TransferError) => err.status === 'ALREADY_EXISTS');
  const again = s.a.push({ peer: 'b', tensor, total: data.length, transferId: 'res-1', resume: true });
  const from = await again.offset;
  assert.equal(from, 200 * KiB);
  for (let off = from; off < data.length; off += 100 * KiB) {
    await again.transfer.waitForSpace();
    again.transfer.write(off, data.subarray(off, Math.min(data.length, off + 100 * KiB)));
  }
  again.transfer.finish(createHash('sha256').update(data).digest());
  await again.transfer.done;
  assert.equal(sha(await readFile(path.join(s.spoolB, 'res-1.tensor'))), sha(data));
  assert.deepEqual((await readdir(s.spoolB)).sort(), ['res-1.json', 'res-1.tensor']);
  await s.close();
});
