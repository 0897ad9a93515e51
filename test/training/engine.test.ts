// The transfer engine end to end between two nodes over in-process links: ordering, windows,
// resume after cuts, corruption, receiver restarts, refusals.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { TransferError } from '../../src/training/errors.ts';
import type { ReceiveEvent, Subscriber } from '../../src/training/receive-events.ts';
import { TrainingNode, type TrainingLimits } from '../../src/training/training-node.ts';
import { MemoryTransport } from '../helpers/memory-transport.ts';

const KEY = Buffer.alloc(32, 7);
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function pair(limits: Partial<TrainingLimits> = {}, corruptChunk?: (id: string, offset: number) => boolean) {
  const net = new MemoryTransport();
  const spoolA = await mkdtemp(path.join(tmpdir(), 'sluice-a-'));
  const spoolB = await mkdtemp(path.join(tmpdir(), 'sluice-b-'));
  dirs.push(spoolA, spoolB);
  const peers = [
    { name: 'b', segment: 'training' as const, host: '127.0.0.1', port: 7471 },
    { name: 'egress', segment: 'inference' as const, host: '127.0.0.1', port: 7470 },
  ];
  const a = new TrainingNode({ nodeName: 'a', transport: net, segmentKey: KEY, peers, spoolDir: spoolA, limits: { resumeTimeoutMs: 3000, ...limits }, ...(corruptChunk ? { corruptChunk } : {}) });
  await a.start();
  const startB = async () => {
    const b = new TrainingNode({ nodeName: 'b', transport: net, segmentKey: KEY, peers: [], spoolDir: spoolB, limits });
    await b.start();
    const listener = await net.listen({ segment: 'training', host: '127.0.0.1', port: 7471, segmentKey: KEY });
    listener.on('link', (l) => b.attachLink(l));
    return { b, listener };
  };
  const { b, listener } = await startB();
  return { net, a, b, listener, spoolB, startB };
}

/** What a producer does: wait for the offset, write chunks as the window allows, finish. */
async function produce(node: TrainingNode, data: Buffer, opts: { id?: string; chunk?: number; resume?: boolean; sink?: 'spool' | 'stream'; name?: string; onChunk?: (offset: number) => void } = {}) {
  const handle = node.push({
    peer: 'b',
    tensor: { name: opts.name ?? 'grad/w', datatype: 'UINT8', shape: [data.length], attributes: { step: '1' } },
    total: data.length,
    ...(opts.id ? { transferId: opts.id } : {}),
    ...(opts.resume ? { resume: true } : {}),
    ...(opts.sink ? { sink: opts.sink } : {}),
  });
  const chunk = opts.chunk ?? 64 * 1024;
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

test('a tensor arrives whole in the spool with its SHA-256 checked', async () => {
  const { a, b, spoolB } = await pair({ windowBytes: 256 * 1024 });
  const data = randomBytes(3 * 1024 * 1024 + 123);
  const { result } = await produce(a, data, { id: 'whole-1' });
  assert.equal(result.sha256.toString('hex'), sha(data));
  assert.equal(result.resumes, 0);
  assert.equal(sha(await readFile(path.join(spoolB, 'whole-1.tensor'))), sha(data));
  assert.equal(b.status('whole-1').state, 'completed');
  assert.equal(a.status('whole-1').state, 'completed');
  const reader = await b.read({ name: 'grad/w' }, 1000);
  const parts: Buffer[] = [];
  for await (const c of reader.chunks) parts.push(c);
  assert.equal(sha(Buffer.concat(parts)), sha(data.subarray(1000)));
  await a.close();
  await b.close();
});

test('the link is cut again and again mid-transfer; the transfer resumes and completes', async () => {
  const { net, a, b, spoolB } = await pair({ windowBytes: 512 * 1024 });
  const data = randomBytes(4 * 1024 * 1024);
  let cuts = 0;
  const { result } = await produce(a, data, {
    id: 'cut-1',
    onChunk: (off) => {
      if (off % (1024 * 1024) === 0 && cuts < 3) {
        cuts++;
        net.cutAll();
      }
    },
  });
  assert.equal(cuts, 3);
  assert.ok(result.resumes >= 3, `resumes ${result.resumes}`);
  assert.equal(sha(await readFile(path.join(spoolB, 'cut-1.tensor'))), sha(data));
  await a.close();
  await b.close();
});

test('a corrupted chunk is detected by its CRC and re-sent', async () => {
  const corrupted = new Set<number>();
  const { a, b, spoolB } = await pair({ windowBytes: 256 * 1024 }, (_id, offset) => {
    // Corrupt the first sending of two chunks; their re-sends go out clean.
    if ((offset === 128 * 1024 || offset === 640 * 1024) && !corrupted.has(offset)) {
      corrupted.add(offset);
      return true;
    }
    return false;
  });
  const data = randomBytes(1024 * 1024);
  const { result } = await produce(a, data, { id: 'crc-1' });
  assert.equal(corrupted.size, 2);
  assert.ok(result.resentChunks >= 2);
  assert.equal(sha(await readFile(path.join(spoolB, 'crc-1.tensor'))), sha(data));
  await a.close();
  await b.close();
});

test('a chunk corrupted on every send fails the transfer with DATA_LOSS', async () => {
  const { a, b } = await pair({ maxCorruptChunks: 3 }, (_id, offset) => offset === 0);
  await assert.rejects(produce(a, randomBytes(200 * 1024), { id: 'crc-2' }), (err: TransferError) => err.status === 'DATA_LOSS' && /corrupted/.test(err.message));
  await a.close();
  await b.close();
});

test('the receiver restarts mid-transfer; the transfer resumes from its spool', async () => {
  const { net, a, b, listener, startB, spoolB } = await pair({ windowBytes: 256 * 1024 });
  const data = randomBytes(2 * 1024 * 1024);
  let restarted = false;
  let b2: TrainingNode | undefined;
  const { result } = await produce(a, data, {
    id: 'restart-1',
    onChunk: (off) => {
      if (off === 1024 * 1024 && !restarted) {
        restarted = true;
        // The receiver dies (its links go with it) and comes back on the same spool.
        void (async () => {
          await listener.close();
          await b.close();
          net.cutAll();
          b2 = (await startB()).b;
        })();
      }
    },
  });
  assert.ok(restarted && result.resumes >= 1);
  assert.equal(sha(await readFile(path.join(spoolB, 'restart-1.tensor'))), sha(data));
  assert.equal(b2?.status('restart-1').state, 'completed');
  await a.close();
  await b2?.close();
});

test('stream sink: a subscriber gets begin, the data in order, and end with the digest', async () => {
  const { a, b } = await pair({ windowBytes: 128 * 1024 });
  const events: ReceiveEvent[] = [];
  const sub: Subscriber = { namePrefix: 'act/', includeSpooled: false, closed: false, send: async (e) => void events.push(e) };
  b.subscribe(sub);
  const data = randomBytes(600 * 1024);
  await produce(a, data, { id: 'stream-1', sink: 'stream', name: 'act/x' });
  const begin = events[0];
  assert.ok(begin && 'begin' in begin && begin.begin.tensor.name === 'act/x');
  const bytes = Buffer.concat(events.flatMap((e) => ('data' in e ? [e.data.data] : [])));
  assert.equal(sha(bytes), sha(data));
  const end = events.at(-1);
  assert.ok(end && 'end' in end && end.end.sha256.toString('hex') === sha(data));
  await assert.rejects(produce(a, data, { id: 'stream-2', sink: 'stream', name: 'other/x' }), (err: TransferError) => err.status === 'FAILED_PRECONDITION' && /no subscriber/.test(err.message));
  await a.close();
  await b.close();
});

test('unknown peers and inference-segment peers are refused with clear errors', async () => {
  const { a, b } = await pair();
  const tensor = { name: 'x', datatype: 'FP32', shape: [1], attributes: {} };
  assert.throws(() => a.push({ peer: 'nope', tensor, total: 4 }), (err: TransferError) => err.status === 'NOT_FOUND' && err.message === 'unknown peer "nope"; training peers: b');
  assert.throws(() => a.push({ peer: 'egress', tensor, total: 4 }), (err: TransferError) => err.status === 'FAILED_PRECONDITION' && /inference segment; training transfers travel only on the training segment/.test(err.message));
  assert.throws(() => a.push({ peer: 'b', tensor: { ...tensor, name: '../etc' }, total: 4, transferId: 'x/y' }), (err: TransferError) => err.status === 'INVALID_ARGUMENT');
  assert.throws(() => a.push({ peer: 'b', tensor, total: 0 }), /total_bytes must be between 1 and/);
  assert.throws(() => a.push({ peer: 'b', tensor: { ...tensor, shape: [2.5] }, total: 4 }), /tensor shape must be at most 32 integer dimensions/);
  await a.close();
  await b.close();
});

test('an unreachable peer fails the transfer with UNAVAILABLE after the resume timeout', async () => {
  const { a, b, listener } = await pair({ resumeTimeoutMs: 300 });
  await listener.close();
  await assert.rejects(produce(a, randomBytes(1000), { id: 'unreach-1' }), (err: TransferError) => err.status === 'UNAVAILABLE' && /unreachable/.test(err.message));
  await a.close();
  await b.close();
});

test('a producer that goes away can resume on the same node from where it stopped', async () => {
  const { a, b, spoolB } = await pair({ windowBytes: 256 * 1024 });
  const data = randomBytes(1024 * 1024);
  const tensor = { name: 'w', datatype: 'UINT8', shape: [data.length], attributes: {} };
  const first = a.push({ peer: 'b', tensor, total: data.length, transferId: 'res-1' });
  await first.offset;
  first.transfer.write(0, data.subarray(0, 300 * 1024));
  first.transfer.producerAttached = false; // the Push stream ended here
  const again = a.push({ peer: 'b', tensor, total: data.length, transferId: 'res-1', resume: true });
  const from = await again.offset;
  assert.equal(from, 300 * 1024);
  for (let off = from; off < data.length; off += 100 * 1024) {
    await again.transfer.waitForSpace();
    again.transfer.write(off, data.subarray(off, Math.min(data.length, off + 100 * 1024)));
  }
  again.transfer.finish(createHash('sha256').update(data).digest());
  await again.transfer.done;
  assert.equal(sha(await readFile(path.join(spoolB, 'res-1.tensor'))), sha(data));
  assert.deepEqual((await readdir(spoolB)).sort(), ['res-1.json', 'res-1.tensor']);
  await a.close();
  await b.close();
});
