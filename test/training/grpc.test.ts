// sluice.v1.TensorTransfer over real gRPC and real TCP training links, through the TypeScript
// client (`connect` from the package entry point): pushes from a buffer and a file, resume after
// the job's own connection breaks, stream and spool sinks on the receiving side, status, errors.
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { connect, TransferError, type ReceiveEvent } from '../../src/index.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { Listener } from '../../src/transport/types.ts';
import { addTensorTransferService } from '../../src/training/grpc-service.ts';
import { TrainingNode } from '../../src/training/training-node.ts';
import { startTcpFaultProxy, type TcpFaultProxy } from '../helpers/tcp-fault-proxy.ts';

const KEY = randomBytes(32);
const KiB = 1024;
const MiB = 1024 * KiB;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let dir: string;
let a: TrainingNode;
let b: TrainingNode;
let listener: Listener;
let serverA: grpc.Server;
let serverB: grpc.Server;
let addrA: string;
let addrB: string;
let jobProxy: TcpFaultProxy;

async function grpcServer(node: TrainingNode): Promise<{ server: grpc.Server; address: string }> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * MiB });
  addTensorTransferService(server, node);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { server, address: `127.0.0.1:${port}` };
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sluice-grpc-'));
  const transport = new TcpTransport();
  b = new TrainingNode({ nodeName: 'b', transport, segmentKey: KEY, peers: [], spoolDir: path.join(dir, 'b') });
  await b.start();
  listener = await transport.listen({ segment: 'training', host: '127.0.0.1', port: 0, segmentKey: KEY });
  listener.on('link', (l) => b.attachLink(l));
  a = new TrainingNode({
    nodeName: 'a',
    transport,
    segmentKey: KEY,
    peers: [
      { name: 'b', segment: 'training', host: '127.0.0.1', port: listener.address.port },
      { name: 'egress', segment: 'inference', host: '127.0.0.1', port: 7470 },
    ],
    spoolDir: path.join(dir, 'a'),
    limits: { windowBytes: MiB, resumeTimeoutMs: 5000 },
  });
  await a.start();
  ({ server: serverA, address: addrA } = await grpcServer(a));
  ({ server: serverB, address: addrB } = await grpcServer(b));
  // The job's connection to its sidecar dies after 1.5 MiB on its first connection.
  jobProxy = await startTcpFaultProxy({ host: '127.0.0.1', port: Number(addrA.split(':')[1]) }, (n) => (n === 0 ? { cutAfter: 1.5 * MiB } : {}));
});

after(async () => {
  serverA.forceShutdown();
  serverB.forceShutdown();
  await jobProxy.close();
  await a.close();
  await b.close();
  await listener.close();
  await rm(dir, { recursive: true, force: true });
});

test('push a buffer, then pull it back on the receiving node', async () => {
  const client = connect(addrA);
  const data = randomBytes(5 * MiB + 7);
  const progress: number[] = [];
  const r = await client.push('b', 'ckpt/shard-0', data, { transferId: 'buf-1', datatype: 'UINT8', attributes: { step: '12' }, onProgress: (n) => progress.push(n) });
  assert.equal(r.sha256.toString('hex'), sha(data));
  assert.equal(r.attempts, 1);
  assert.equal(progress.at(-1), data.length);
  const st = await client.status('buf-1');
  assert.equal(st.state, 'completed');
  assert.equal(st.direction, 'outbound');

  const rx = connect(addrB);
  const out = path.join(dir, 'pulled.bin');
  const digest = await rx.pullToFile({ name: 'ckpt/shard-0' }, out);
  assert.equal(digest.toString('hex'), sha(data));
  assert.equal(sha(await readFile(out)), sha(data));
  const events: ReceiveEvent[] = [];
  for await (const e of rx.pull({ transferId: 'buf-1' }, data.length - 10)) events.push(e);
  const begin = events[0] as Extract<ReceiveEvent, { begin: unknown }>;
  assert.equal(begin.begin.tensor.attributes.step, '12');
  assert.equal(begin.begin.offset, data.length - 10);
  assert.equal(sha(Buffer.concat(events.flatMap((e) => ('data' in e ? [e.data.data] : [])))), sha(data.subarray(data.length - 10)));
  assert.equal((await rx.status('buf-1')).direction, 'inbound');
  client.close();
  rx.close();
});

test('push a file through a connection that breaks: the client resumes the same transfer', async () => {
  const file = path.join(dir, 'src.bin');
  const data = randomBytes(4 * MiB);
  await writeFile(file, data);
  const client = connect(`127.0.0.1:${jobProxy.port}`);
  const r = await client.push('b', 'ckpt/shard-1', { path: file }, { transferId: 'file-1', chunkBytes: 128 * KiB });
  assert.ok(r.attempts >= 2, `attempts ${r.attempts}`);
  assert.equal(r.sha256.toString('hex'), sha(data));
  assert.equal(sha(await readFile(path.join(dir, 'b', 'file-1.tensor'))), sha(data));
  client.close();
});

test('stream sink: a subscriber on the receiving node gets the tensor as it arrives', async () => {
  const rx = connect(addrB);
  const sub = rx.subscribe({ namePrefix: 'act/' });
  await sub.ready;
  const data = randomBytes(3 * MiB);
  const received = (async () => {
    const parts: Buffer[] = [];
    for await (const e of sub) {
      if ('data' in e) parts.push(e.data.data);
      if ('end' in e) return { bytes: Buffer.concat(parts), sha256: e.end.sha256 };
    }
    throw new Error('subscription ended early');
  })();
  const tx = connect(addrA);
  const r = await tx.push('b', 'act/layer1', data, { sink: 'stream' });
  const got = await received;
  assert.equal(sha(got.bytes), sha(data));
  assert.ok(got.sha256.equals(r.sha256));
  sub.close();
  tx.close();
  rx.close();
});

test('refusals arrive as gRPC statuses with clear details', async () => {
  const client = connect(addrA);
  const data = randomBytes(1000);
  await assert.rejects(client.push('nope', 'x', data), (e: TransferError) => e.status === 'NOT_FOUND' && e.message === 'unknown peer "nope"; training peers: b');
  await assert.rejects(client.push('egress', 'x', data), (e: TransferError) => e.status === 'FAILED_PRECONDITION' && /inference segment/.test(e.message));
  await assert.rejects(client.push('b', 'bad name!', data), (e: TransferError) => e.status === 'INVALID_ARGUMENT' && /tensor name/.test(e.message));
  await assert.rejects(client.push('b', 'act/nobody', data, { sink: 'stream', transferId: 'nosub-1' }), (e: TransferError) => e.status === 'FAILED_PRECONDITION' && /no subscriber/.test(e.message));
  await assert.rejects(client.status('missing'), (e: TransferError) => e.status === 'NOT_FOUND');
  await assert.rejects(async () => {
    for await (const _ of connect(addrB).pull({ name: 'never/sent' })) void _;
  }, (e: TransferError) => e.status === 'NOT_FOUND');
  client.close();
});

test('a raw client that breaks the protocol gets INVALID_ARGUMENT', async () => {
  const { tensorTransferClientConstructor } = await import('../../src/training/proto.ts');
  const Ctor = tensorTransferClientConstructor();
  const raw = new Ctor(addrA, grpc.credentials.createInsecure()) as unknown as { Push(): grpc.ClientDuplexStream<unknown, unknown>; close(): void };
  const call = raw.Push();
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  call.on('error', () => {});
  call.on('data', () => {});
  call.write({ chunk: { offset: 0, data: Buffer.alloc(4) } });
  const s = await status;
  assert.equal(s.code, grpc.status.INVALID_ARGUMENT);
  assert.match(s.details, /first message of Push must be start/);
  assert.ok(s.metadata.get('x-request-id')[0]);
  raw.close();
});
