// Transfer correctness (issue 14, item 6): a completed id pushed again, spool writes in order
// (the resume-after-SIGKILL DATA_LOSS), the DATA_LOSS partial quarantined, and resume /
// completion / failure logged on both nodes. Real nodes on real TCP links and real gRPC.
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { connect, TransferError } from '../../src/index.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import { addTensorTransferService } from '../../src/training/grpc-service.ts';
import { Spool } from '../../src/training/spool.ts';
import { SpoolSink } from '../../src/training/tensor-sink.ts';
import { TrainingNode } from '../../src/training/training-node.ts';
import type { TransferEvent } from '../../src/training/transfer-state.ts';
import { startTcpFaultProxy } from '../helpers/tcp-fault-proxy.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const KEY = randomBytes(32);
const KiB = 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest();

async function pair(opts: { cutFirstAfter?: number } = {}) {
  const transport = new TcpTransport();
  const events: { a: TransferEvent[]; b: TransferEvent[] } = { a: [], b: [] };
  const spoolB = tempDir('sluice-b-');
  const b = new TrainingNode({ nodeName: 'b', transport, segmentKey: KEY, peers: [], spoolDir: spoolB, onTransferEvent: (e) => events.b.push(e) });
  await b.start();
  const listener = await transport.listen({ segment: 'training', host: '127.0.0.1', port: 0, segmentKey: KEY });
  listener.on('link', (l) => b.attachLink(l));
  const proxy = opts.cutFirstAfter !== undefined ? await startTcpFaultProxy({ host: '127.0.0.1', port: listener.address.port }, (n) => (n === 0 ? { cutAfter: opts.cutFirstAfter } : {})) : undefined;
  const makeA = async () => {
    const a = new TrainingNode({
      nodeName: 'a',
      transport,
      segmentKey: KEY,
      peers: [{ name: 'b', segment: 'training', host: '127.0.0.1', port: proxy?.port ?? listener.address.port }],
      spoolDir: tempDir('sluice-a-'),
      limits: { windowBytes: 256 * KiB, resumeTimeoutMs: 10_000 },
      onTransferEvent: (e) => events.a.push(e),
    });
    await a.start();
    return a;
  };
  const a = await makeA();
  const server = new grpc.Server();
  addTensorTransferService(server, a);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return {
    a,
    b,
    spoolB,
    events,
    makeA,
    grpcAddress: `127.0.0.1:${port}`,
    async close() {
      server.forceShutdown();
      await a.close();
      await b.close();
      await listener.close();
      await proxy?.close();
    },
  };
}

async function produce(node: TrainingNode, data: Buffer, id: string, opts: { resume?: boolean; finishSha?: Buffer } = {}) {
  const handle = node.push({ peer: 'b', tensor: { name: 'grad/w', datatype: 'UINT8', shape: [data.length], attributes: {} }, total: data.length, transferId: id, ...(opts.resume ? { resume: true } : {}) });
  let offset = await handle.offset;
  while (offset < data.length) {
    await handle.transfer.waitForSpace();
    const n = Math.min(32 * KiB, data.length - offset);
    handle.transfer.write(offset, data.subarray(offset, offset + n));
    offset += n;
  }
  if (!handle.transfer.finished) handle.transfer.finish(opts.finishSha ?? sha(data));
  return { handle, result: await handle.transfer.done };
}

test('a completed id pushed again: ALREADY_EXISTS without resume, the completed result with it; the record stays COMPLETED', async () => {
  const s = await pair();
  try {
    const data = randomBytes(300 * KiB);
    await produce(s.a, data, 'done-1');
    // Same node (it remembers the transfer).
    await assert.rejects(produce(s.a, data, 'done-1'), (e: TransferError) => e.status === 'ALREADY_EXISTS' && /already completed/.test(e.message));
    assert.equal(s.a.status('done-1').state, 'completed');
    const again = await produce(s.a, data, 'done-1', { resume: true });
    assert.deepEqual(again.result.sha256, sha(data));
    assert.equal(s.a.status('done-1').state, 'completed');
    // Over gRPC, as a job sees it.
    const client = connect(s.grpcAddress);
    try {
      await assert.rejects(client.push('b', 'grad/w', data, { transferId: 'done-1' }), (e: TransferError) => e.status === 'ALREADY_EXISTS');
      const r = await client.push('b', 'grad/w', data, { transferId: 'done-1', resume: true });
      assert.deepEqual(r.sha256, sha(data));
      assert.equal((await client.status('done-1')).state, 'completed');
    } finally {
      client.close();
    }
    // A sender that forgot the transfer (restarted): only the peer knows it is complete.
    const fresh = await s.makeA();
    try {
      await assert.rejects(produce(fresh, data, 'done-1'), (e: TransferError) => e.status === 'ALREADY_EXISTS' && /already completed on peer "b"/.test(e.message));
      assert.equal(fresh.status('done-1').state, 'completed');
      const resumed = await produce(fresh, data, 'done-1', { resume: true });
      assert.deepEqual(resumed.result.sha256, sha(data));
    } finally {
      await fresh.close();
    }
    assert.equal(s.b.status('done-1').state, 'completed');
    assert.ok((await readFile(path.join(s.spoolB, 'done-1.tensor'))).equals(data));
  } finally {
    await s.close();
  }
});

test('spool writes run one at a time in offset order, so the partial is always the received prefix', async () => {
  const dir = tempDir('sluice-sink-');
  const spool = new Spool(dir);
  await spool.init();
  const partial = await spool.create('w-1', 'a', { name: 'x', datatype: 'UINT8', shape: [8 * 64 * KiB], attributes: {} }, 8 * 64 * KiB);
  // Watch the real file handle: how many writes overlap.
  let inFlight = 0;
  let maxInFlight = 0;
  const handle = partial.handle;
  const realWrite = handle.write.bind(handle) as (...args: unknown[]) => Promise<{ bytesWritten: number }>;
  (handle as unknown as { write: (...args: unknown[]) => Promise<unknown> }).write = async (...args: unknown[]) => {
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    try {
      return await realWrite(...args);
    } finally {
      inFlight--;
    }
  };
  const sink = new SpoolSink(spool, 'w-1', handle, () => undefined);
  const chunks = Array.from({ length: 8 }, () => randomBytes(64 * KiB));
  await Promise.all(chunks.map((c, i) => sink.write(i * 64 * KiB, c)));
  assert.equal(maxInFlight, 1, 'overlapping pwrites can finish out of order; a SIGKILL then leaves a hole below the file size');
  await sink.complete(sha(Buffer.concat(chunks)));
  assert.ok((await readFile(spool.tensorPath('w-1'))).equals(Buffer.concat(chunks)));
});

test('a failed spool write fails every later one (no write past a hole)', async () => {
  const dir = tempDir('sluice-sink-');
  const spool = new Spool(dir);
  await spool.init();
  const partial = await spool.create('w-2', 'a', { name: 'x', datatype: 'UINT8', shape: [3], attributes: {} }, 3);
  const sink = new SpoolSink(spool, 'w-2', partial.handle, () => undefined);
  // Past the file system's largest file: EFBIG / EINVAL from the kernel.
  const first = sink.write(2 ** 52, Buffer.from([1]));
  const second = sink.write(0, Buffer.from([2]));
  await assert.rejects(first);
  await assert.rejects(second, 'the write behind a failed one is not made');
  await partial.handle.close();
  assert.equal((await readFile(path.join(dir, 'w-2.part'))).length, 0);
});

test('DATA_LOSS keeps the partial in quarantine/ and both nodes log the failure', async () => {
  const s = await pair();
  try {
    const data = randomBytes(200 * KiB);
    await assert.rejects(produce(s.a, data, 'bad-1', { finishSha: Buffer.alloc(32, 7) }), (e: TransferError) => e.status === 'DATA_LOSS' && /sha256 mismatch/.test(e.message));
    const qdir = path.join(s.spoolB, 'quarantine');
    let names: string[] = [];
    for (let i = 0; i < 100 && !names.some((n) => n.endsWith('.part')); i++) {
      names = await readdir(qdir).catch(() => []);
      await new Promise((r) => setTimeout(r, 20));
    }
    const part = names.find((n) => n.startsWith('bad-1.') && n.endsWith('.part'));
    assert.ok(part, `quarantined partial in ${names.join(', ')}`);
    assert.ok((await readFile(path.join(qdir, part))).equals(data), 'the quarantined bytes are what arrived');
    const why = JSON.parse(await readFile(path.join(qdir, part.replace(/\.part$/, '.json')), 'utf8')) as { reason: string; tensor: { name: string } };
    assert.match(why.reason, /sha256 mismatch/);
    assert.equal(why.tensor.name, 'grad/w');
    assert.equal((await readdir(s.spoolB)).some((n) => n.startsWith('bad-1.')), false, 'nothing of it is left in the spool proper');
    assert.ok(s.events.b.some((e) => e.id === 'bad-1' && e.event === 'failed' && e.status === 'DATA_LOSS'));
    assert.ok(s.events.b.some((e) => e.id === 'bad-1' && e.event === 'quarantined' && e.path === path.join(qdir, part)));
    assert.ok(s.events.a.some((e) => e.id === 'bad-1' && e.event === 'failed' && e.status === 'DATA_LOSS'));
  } finally {
    await s.close();
  }
});

test('a cut link: both nodes log the resume with its offset, then the completion', async () => {
  const s = await pair({ cutFirstAfter: 150 * KiB });
  try {
    const data = randomBytes(600 * KiB);
    const { result } = await produce(s.a, data, 'cut-1');
    assert.ok(result.resumes >= 1);
    for (const side of ['a', 'b'] as const) {
      const mine = s.events[side].filter((e) => e.id === 'cut-1');
      const resumed = mine.find((e) => e.event === 'resumed');
      assert.ok(resumed, `${side} logged the resume: ${JSON.stringify(mine)}`);
      assert.ok((resumed.offset ?? -1) > 0 && (resumed.offset ?? 0) < data.length);
      assert.ok(mine.some((e) => e.event === 'completed' && e.sha256 === sha(data).toString('hex')), `${side} logged the completion`);
    }
  } finally {
    await s.close();
  }
});
