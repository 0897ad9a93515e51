// The training job of the mixed benchmark, in a child process of its own (so its CPU is not the
// inference client's). One role per process, driven over IPC by bench/mixed.ts:
//   send-sluice ADDRESS PEER     pushes tensors with the sluice client (`connect`) until told to stop
//   recv-sluice ADDRESS          subscribes on the receiving sluice (sink STREAM), hashes what arrives
//   send-grpc ADDRESS            streams tensors as raw 1 MiB messages of one client-streaming call
//                                (what a job does without sluice), here through nginx grpc_pass
//   recv-grpc                    serves that call: hashes the stream and answers its SHA-256
// Every tensor is the same TENSOR_BYTES; receivers count bytes delivered to the job (the
// throughput measured) and check each tensor's SHA-256. Messages from the parent:
// {cmd:'start'} {cmd:'stop'} {cmd:'sample'}; replies {ready} {stopped} {sample:{bytes,tensors,bad}}.
import * as grpc from '@grpc/grpc-js';
import { createHash, randomBytes } from 'node:crypto';
import { connect } from '../src/index.ts';

const SINK_PATH = '/bench.TensorSink/Push';
const CHUNK = 1024 * 1024;
const identity = (b: Buffer): Buffer => b;

type Cmd = { cmd: 'start' } | { cmd: 'stop' } | { cmd: 'sample' };

const [role, address, peer] = process.argv.slice(2) as [string, string | undefined, string | undefined];
const tensorBytes = Number(process.env.MIXED_TENSOR_BYTES ?? 1024 * 1024 * 1024);

function send(m: object): void {
  process.send?.(m);
}

/** A tensor of random-looking bytes, built from one random MiB (randomBytes of 1 GiB is slow). */
function makeTensor(): Buffer {
  const t = Buffer.allocUnsafe(tensorBytes);
  const pattern = randomBytes(CHUNK);
  for (let off = 0; off < t.length; off += CHUNK) pattern.copy(t, off, 0, Math.min(CHUNK, t.length - off));
  // Make each MiB differ so nothing downstream could dedupe or compress it away.
  for (let off = 0; off + 8 <= t.length; off += CHUNK) t.writeDoubleLE(off, off);
  return t;
}

/** Runs `pushOne` in a loop from 'start' until 'stop'; the loop's abort cancels the current tensor. */
function senderLoop(pushOne: (n: number, signal: AbortSignal) => Promise<void>): void {
  let ctl: AbortController | undefined;
  let loop: Promise<void> | undefined;
  process.on('message', (m: Cmd) => {
    if (m.cmd === 'start' && loop === undefined) {
      const c = new AbortController();
      ctl = c;
      loop = (async () => {
        for (let n = 0; !c.signal.aborted; n++) {
          try {
            await pushOne(n, c.signal);
          } catch (err) {
            if (!c.signal.aborted) {
              console.error(`mixed-training-job ${role}: ${(err as Error).message}`);
              await new Promise((r) => setTimeout(r, 200));
            }
          }
        }
      })();
    } else if (m.cmd === 'stop') {
      ctl?.abort();
      void (loop ?? Promise.resolve()).then(() => {
        loop = undefined;
        send({ stopped: true });
      });
    }
  });
}

/** Counts what arrives; `sample` answers with the totals so far. */
class Counter {
  bytes = 0;
  tensors = 0;
  bad = 0;
  constructor() {
    process.on('message', (m: Cmd) => {
      if (m.cmd === 'sample') send({ sample: { bytes: this.bytes, tensors: this.tensors, bad: this.bad } });
    });
  }
}

async function sendSluice(): Promise<void> {
  const tensor = makeTensor();
  const client = connect(address!);
  let runId = 0;
  senderLoop(async (n, signal) => {
    const transferId = `mix-${process.pid}-${runId}-${n}`;
    try {
      await client.push(peer!, `bench/mixed/${n}`, tensor, { transferId, sink: 'stream', chunkBytes: CHUNK, signal, maxAttempts: 1 });
    } catch (err) {
      if (signal.aborted) await client.cancel(transferId, 'benchmark phase over').catch(() => {});
      throw err;
    }
  });
  process.on('message', (m: Cmd) => {
    if (m.cmd === 'stop') runId++;
  });
  send({ ready: true });
}

async function recvSluice(): Promise<void> {
  const counter = new Counter();
  const client = connect(address!);
  const sub = client.subscribe({ namePrefix: 'bench/mixed/' });
  await sub.ready;
  send({ ready: true });
  const hashes = new Map<string, ReturnType<typeof createHash>>();
  for await (const e of sub) {
    if ('begin' in e) hashes.set(e.begin.transferId, createHash('sha256'));
    else if ('data' in e) {
      hashes.get(e.data.transferId)?.update(e.data.data);
      counter.bytes += e.data.data.length;
    } else if ('end' in e) {
      const got = hashes.get(e.end.transferId)?.digest();
      hashes.delete(e.end.transferId);
      if (got !== undefined && got.equals(e.end.sha256)) counter.tensors++;
      else counter.bad++;
    } else if ('aborted' in e) hashes.delete(e.aborted.transferId);
  }
}

async function sendGrpc(): Promise<void> {
  const tensor = makeTensor();
  const client = new grpc.Client(address!, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 4 * CHUNK });
  senderLoop(
    (_n, signal) =>
      new Promise<void>((resolve, reject) => {
        const hash = createHash('sha256');
        const call = client.makeClientStreamRequest(SINK_PATH, identity, identity, new grpc.Metadata(), {}, (err, res) => {
          if (err) reject(err);
          else if (!res!.equals(hash.digest())) reject(new Error('the receiver got a different SHA-256'));
          else resolve();
        });
        const onAbort = () => call.cancel();
        signal.addEventListener('abort', onAbort, { once: true });
        (async () => {
          for (let off = 0; off < tensor.length && !signal.aborted; off += CHUNK) {
            const piece = tensor.subarray(off, Math.min(tensor.length, off + CHUNK));
            hash.update(piece);
            if (!call.write(piece)) await new Promise((r) => call.once('drain', r));
          }
          call.end();
        })().catch(reject);
      }),
  );
  send({ ready: true });
}

async function recvGrpc(): Promise<void> {
  const counter = new Counter();
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 4 * CHUNK });
  server.register(SINK_PATH, (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
    const hash = createHash('sha256');
    let got = 0;
    call.on('data', (b: Buffer) => {
      hash.update(b);
      got += b.length;
      counter.bytes += b.length;
    });
    call.on('end', () => {
      if (got === tensorBytes) counter.tensors++;
      cb(null, hash.digest());
    });
    call.on('error', () => {});
  }, identity, identity, 'clientStream');
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  send({ ready: true, address: `127.0.0.1:${port}` });
}

const roles: Record<string, () => Promise<void>> = { 'send-sluice': sendSluice, 'recv-sluice': recvSluice, 'send-grpc': sendGrpc, 'recv-grpc': recvGrpc };
const run = roles[role];
if (run === undefined) {
  console.error(`unknown role ${role}; one of ${Object.keys(roles).join(', ')}`);
  process.exit(2);
}
process.on('disconnect', () => process.exit(0));
await run();
