// The ingress's lean gRPC server (src/ingress/http2-grpc-server.ts) against a real grpc-js
// client, and raw node:http2 requests for what grpc-js clients never send (wrong content-type,
// compressed or truncated messages, malformed grpc-timeout). Handlers here are small test
// services: echo (unary), a call that never answers, and a bidi echo stream.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { framedMessage } from '../../src/ingress/grpc-deframer.ts';
import { type GrpcServerCall, Http2GrpcServer } from '../../src/ingress/http2-grpc-server.ts';
import { GrpcStatus } from '../../src/kserve/status.ts';

const MAX = 64 * 1024;
let server: Http2GrpcServer;
let address: string;
let client: grpc.Client;
const cancelled: string[] = [];
let hangingCall: GrpcServerCall | undefined;

const bytes = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };

before(async () => {
  server = new Http2GrpcServer({ maxMessageBytes: MAX });
  server
    .register('/t.Test/Echo', { kind: 'unary', handle: (call, req) => call.reply(req, { 'x-request-id': String(call.headers['x-request-id'] ?? 'none') }) })
    .register('/t.Test/Fail', { kind: 'unary', handle: (call, req) => call.finish(GrpcStatus.NOT_FOUND, req.toString('utf8'), { 'x-request-id': 'f1' }) })
    .register('/t.Test/Hang', {
      kind: 'unary',
      handle: (call) => {
        hangingCall = call;
        call.onCancel(() => cancelled.push(call.path));
      },
    })
    .register('/t.Test/Chat', {
      kind: 'streaming',
      handle: (call) => ({
        onMessage: (m) => call.sendMessage(Buffer.concat([Buffer.from('re:'), m])),
        onEnd: () => call.finish(GrpcStatus.OK),
      }),
    });
  const port = await server.listen('127.0.0.1', 0);
  address = `127.0.0.1:${port}`;
  client = new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 4 * MAX });
});

after(async () => {
  client.close();
  await server.close(200);
});

function unary(path: string, req: Buffer, opts: { deadlineMs?: number; md?: Record<string, string> } = {}): Promise<{ res?: Buffer; err?: grpc.ServiceError; trailers: grpc.Metadata }> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(opts.md ?? {})) md.set(k, v);
  return new Promise((resolve) => {
    let result: { res?: Buffer; err?: grpc.ServiceError } | undefined;
    let trailers: grpc.Metadata | undefined;
    const settle = (): void => {
      if (result !== undefined && trailers !== undefined) resolve({ ...result, trailers });
    };
    const call = client.makeUnaryRequest(path, bytes.serialize, bytes.deserialize, req, md, { deadline: Date.now() + (opts.deadlineMs ?? 5000) }, (err, res) => {
      result = err ? { err } : { res: res! };
      settle();
    });
    call.on('status', (s: grpc.StatusObject) => {
      trailers = s.metadata;
      settle();
    });
  });
}

/** One raw HTTP/2 request; resolves with the response headers, body and trailers. */
function raw(headers: http2.OutgoingHttpHeaders, body: Buffer): Promise<{ headers: http2.IncomingHttpHeaders; body: Buffer; trailers: http2.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${address}`);
    session.on('error', reject);
    const req = session.request({ ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers', ...headers });
    let h: http2.IncomingHttpHeaders = {};
    let t: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (x) => (h = x));
    req.on('trailers', (x) => (t = x));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => undefined);
    req.on('close', () => {
      session.close();
      resolve({ headers: h, body: Buffer.concat(chunks), trailers: t });
    });
    req.end(body);
  });
}

test('unary echo: the message and custom trailers reach a grpc-js client', async () => {
  const r = await unary('/t.Test/Echo', Buffer.from('hello'), { md: { 'x-request-id': 'abc-1' } });
  assert.equal(r.err, undefined);
  assert.equal(r.res!.toString(), 'hello');
  assert.equal(r.trailers.get('x-request-id')[0], 'abc-1');
  // Empty and coalescing-threshold-sized messages round trip too.
  assert.equal((await unary('/t.Test/Echo', Buffer.alloc(0))).res!.length, 0);
  const big = Buffer.alloc(MAX, 7);
  assert.ok((await unary('/t.Test/Echo', big)).res!.equals(big));
});

test('an error status carries a percent-encoded grpc-message that grpc-js decodes back', async () => {
  const msg = 'no model «mödel» here: 100% sure\nsecond line';
  const r = await unary('/t.Test/Fail', Buffer.from(msg));
  assert.equal(r.err?.code, grpc.status.NOT_FOUND);
  assert.equal(r.err?.details, msg);
  assert.equal(r.trailers.get('x-request-id')[0], 'f1');
  const w = await raw({ ':path': '/t.Test/Fail' }, framedMessage(Buffer.from('ä%')));
  assert.equal(w.headers['grpc-status'], '5');
  assert.equal(w.headers['grpc-message'], '%C3%A4%25');
});

test('unknown method: UNIMPLEMENTED', async () => {
  const r = await unary('/t.Test/Nope', Buffer.from('x'));
  assert.equal(r.err?.code, grpc.status.UNIMPLEMENTED);
  assert.match(r.err!.details, /unknown method \/t\.Test\/Nope/);
});

test('oversized request message: RESOURCE_EXHAUSTED from the prefix, before the body is read', async () => {
  const r = await unary('/t.Test/Echo', Buffer.alloc(MAX + 1));
  assert.equal(r.err?.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.match(r.err!.details, new RegExp(`larger than max \\(${MAX + 1} vs ${MAX} bytes\\)`));
  // The prefix alone is enough to refuse.
  const p = Buffer.from([0, 0, 0x10, 0, 0]);
  const w = await raw({ ':path': '/t.Test/Echo' }, p);
  assert.equal(w.headers['grpc-status'], String(GrpcStatus.RESOURCE_EXHAUSTED));
});

test('deadline: grpc-timeout becomes the call deadline; the server ends the call and cancels the handler', async () => {
  cancelled.length = 0;
  const t0 = Date.now();
  const r = await unary('/t.Test/Hang', Buffer.from('x'), { deadlineMs: 300 });
  assert.equal(r.err?.code, grpc.status.DEADLINE_EXCEEDED);
  assert.ok(hangingCall !== undefined && hangingCall.deadline !== undefined);
  assert.ok(Math.abs(hangingCall.deadline - (t0 + 300)) < 100, `deadline ${hangingCall.deadline - t0} ms after the call`);
  // The server's own answer (raw client, which enforces nothing itself).
  const w = await raw({ ':path': '/t.Test/Hang', 'grpc-timeout': '150m' }, framedMessage(Buffer.from('x')));
  assert.equal(w.headers['grpc-status'], String(GrpcStatus.DEADLINE_EXCEEDED));
  assert.match(String(w.headers['grpc-message']), /deadline of 150 ms exceeded/);
  assert.deepEqual(cancelled, ['/t.Test/Hang', '/t.Test/Hang']);
});

test('a client cancel reaches the handler', async () => {
  cancelled.length = 0;
  hangingCall = undefined;
  const call = client.makeUnaryRequest('/t.Test/Hang', bytes.serialize, bytes.deserialize, Buffer.from('x'), () => undefined);
  for (let i = 0; i < 100 && hangingCall === undefined; i++) await new Promise((r) => setTimeout(r, 10));
  call.cancel();
  for (let i = 0; i < 100 && cancelled.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(cancelled, ['/t.Test/Hang']);
  assert.equal(hangingCall!.finished, true);
});

test('bidi stream: every message answered in order, then OK', async () => {
  const call = client.makeBidiStreamRequest('/t.Test/Chat', bytes.serialize, bytes.deserialize);
  const got: string[] = [];
  call.on('data', (b: Buffer) => got.push(b.toString()));
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  for (let i = 0; i < 50; i++) call.write(Buffer.from(`m${i}`));
  call.end();
  assert.equal((await status).code, grpc.status.OK);
  assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => `re:m${i}`));
});

test('protocol errors: content-type, compressed flag, truncated message, extra message, bad grpc-timeout', async () => {
  const wrongType = await raw({ ':path': '/t.Test/Echo', 'content-type': 'application/json' }, Buffer.from('{}'));
  assert.equal(wrongType.headers[':status'], 415);

  const compressed = Buffer.from(framedMessage(Buffer.from('abc')));
  compressed[0] = 1;
  const c = await raw({ ':path': '/t.Test/Echo' }, compressed);
  // Flagged compressed without a grpc-encoding: INTERNAL (gRPC's compression spec).
  assert.equal(c.headers['grpc-status'], String(GrpcStatus.INTERNAL));
  const unknownEncoding = await raw({ ':path': '/t.Test/Echo', 'grpc-encoding': 'snappy' }, compressed);
  assert.equal(unknownEncoding.headers['grpc-status'], String(GrpcStatus.UNIMPLEMENTED));
  assert.equal(unknownEncoding.headers['grpc-accept-encoding'], 'identity,deflate,gzip');

  const truncated = framedMessage(Buffer.from('abcdef')).subarray(0, 8);
  const tr = await raw({ ':path': '/t.Test/Echo' }, truncated);
  assert.equal(tr.headers['grpc-status'], String(GrpcStatus.INVALID_ARGUMENT));
  assert.match(String(tr.headers['grpc-message']), /ended inside a message/);

  const two = Buffer.concat([framedMessage(Buffer.from('a')), framedMessage(Buffer.from('b'))]);
  const tw = await raw({ ':path': '/t.Test/Echo' }, two);
  assert.equal(tw.headers['grpc-status'], String(GrpcStatus.INVALID_ARGUMENT));

  const none = await raw({ ':path': '/t.Test/Echo' }, Buffer.alloc(0));
  assert.equal(none.headers['grpc-status'], String(GrpcStatus.INVALID_ARGUMENT));

  const badTimeout = await raw({ ':path': '/t.Test/Echo', 'grpc-timeout': '123456789m' }, framedMessage(Buffer.from('a')));
  assert.equal(badTimeout.headers['grpc-status'], String(GrpcStatus.INVALID_ARGUMENT));
  assert.match(String(badTimeout.headers['grpc-message']), /malformed grpc-timeout/);

  // A message split over many DATA frames is reassembled.
  const session = http2.connect(`http://${address}`);
  const req = session.request({ ':method': 'POST', ':path': '/t.Test/Echo', 'content-type': 'application/grpc' });
  const framed = framedMessage(Buffer.from('split-message'));
  const chunks: Buffer[] = [];
  req.on('data', (d: Buffer) => chunks.push(d));
  const done = new Promise((r) => req.on('close', r));
  for (let i = 0; i < framed.length; i += 3) {
    req.write(framed.subarray(i, i + 3));
    await new Promise((r) => setImmediate(r));
  }
  req.end();
  await done;
  session.close();
  assert.equal(Buffer.concat(chunks).subarray(5).toString(), 'split-message');
});
