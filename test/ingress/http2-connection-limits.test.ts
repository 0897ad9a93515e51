// The lean HTTP/2 gRPC server closes connections that never talk: raw TCP that sends nothing,
// half a preface, a session idle past idleTimeoutMs, one cut off by a connection-level protocol
// error (GOAWAY first, then the socket closes), and connections over maxConnections.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, test } from 'node:test';
import { Http2GrpcServer } from '../../src/ingress/http2-grpc-server.ts';
import { H2_DATA_ON_STREAM_0, H2_PREFACE, H2_SETTINGS, HALF_H2_PREFACE, h2FrameTypes, rawConnect } from '../helpers/raw-socket.ts';

const HANDSHAKE_MS = 300;
const IDLE_MS = 1200;
const refused: string[] = [];
let server: Http2GrpcServer;
let port: number;

before(async () => {
  server = new Http2GrpcServer({
    maxMessageBytes: 1 << 20,
    limits: { handshakeTimeoutMs: HANDSHAKE_MS, idleTimeoutMs: IDLE_MS, maxConnections: 4, onRefused: (r) => refused.push(r) },
  });
  server.register('/t.S/Echo', { kind: 'unary', handle: (call, req) => call.reply(req) });
  port = await server.listen('127.0.0.1', 0);
});

after(async () => {
  await server.close(0);
});

const count = (reason: string) => refused.filter((r) => r === reason).length;

test('a connection that sends nothing is closed after the handshake timeout', { timeout: 20_000 }, async () => {
  const before = count('handshake_timeout');
  const c = await rawConnect(port);
  const ms = await c.closed(HANDSHAKE_MS * 10);
  assert.ok(ms >= HANDSHAKE_MS - 50, `closed after ${ms} ms`);
  assert.equal(count('handshake_timeout'), before + 1);
});

test('half a connection preface is closed after the handshake timeout', { timeout: 20_000 }, async () => {
  const c = await rawConnect(port, '127.0.0.1', HALF_H2_PREFACE);
  const ms = await c.closed(HANDSHAKE_MS * 10);
  assert.ok(ms >= HANDSHAKE_MS - 50 && ms < HANDSHAKE_MS * 5, `closed after ${ms} ms`);
});

test('a DATA frame on stream 0 gets GOAWAY (PROTOCOL_ERROR), then the socket is closed', { timeout: 20_000 }, async () => {
  const c = await rawConnect(port, '127.0.0.1', Buffer.concat([Buffer.from(H2_PREFACE), H2_SETTINGS]));
  await new Promise((r) => setTimeout(r, 50));
  c.socket.write(H2_DATA_ON_STREAM_0);
  const ms = await c.closed(HANDSHAKE_MS * 10);
  const bytes = c.received();
  const types = h2FrameTypes(bytes);
  const goaway = types.indexOf(0x7);
  assert.ok(goaway >= 0, `frames: ${types.join(',')}`);
  // GOAWAY's error code: PROTOCOL_ERROR (1).
  let off = 0;
  for (let i = 0; i < goaway; i++) off += 9 + bytes.readUIntBE(off, 3);
  assert.equal(bytes.readUInt32BE(off + 9 + 4), 1);
  assert.ok(ms < HANDSHAKE_MS * 5, `closed after ${ms} ms`);
});

test('a session with no streams is sent GOAWAY after the idle timeout; a live client answers PINGs until then', { timeout: 20_000 }, async () => {
  const before = count('idle_timeout');
  const client = http2.connect(`http://127.0.0.1:${port}`);
  const started = Date.now();
  const goaway = new Promise<number>((resolve) => client.once('goaway', () => resolve(Date.now() - started)));
  const closed = new Promise<number>((resolve) => client.once('close', () => resolve(Date.now() - started)));
  client.on('error', () => undefined);
  const goawayAt = await goaway;
  const closedAt = await closed;
  // Not closed as unresponsive (the client acknowledges PINGs), but as idle.
  assert.ok(goawayAt >= IDLE_MS - 50 && goawayAt < IDLE_MS + HANDSHAKE_MS * 4, `GOAWAY after ${goawayAt} ms`);
  assert.ok(closedAt < IDLE_MS + HANDSHAKE_MS * 4 + 1500, `closed after ${closedAt} ms`);
  assert.equal(count('idle_timeout'), before + 1);
});

test('a call keeps its session open past the idle timeout while it runs', { timeout: 20_000 }, async () => {
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on('error', () => undefined);
  try {
    const req = client.request({ ':method': 'POST', ':path': '/t.S/Echo', 'content-type': 'application/grpc' });
    req.on('error', () => undefined);
    // Half a message: the call stays open, waiting for the rest.
    req.write(Buffer.from([0, 0, 0, 0, 3, 1]));
    await new Promise((r) => setTimeout(r, IDLE_MS + HANDSHAKE_MS * 3));
    assert.equal(client.closed || client.destroyed, false);
    req.end(Buffer.from([2, 3]));
    const status = await new Promise<string>((resolve) => req.on('trailers', (t) => resolve(String(t['grpc-status']))));
    assert.equal(status, '0');
  } finally {
    client.destroy();
  }
});

test('connections over maxConnections are closed on accept and counted', { timeout: 20_000 }, async () => {
  const before = count('max_connections');
  const held = await Promise.all(Array.from({ length: 4 }, () => rawConnect(port, '127.0.0.1', Buffer.concat([Buffer.from(H2_PREFACE), H2_SETTINGS]))));
  await new Promise((r) => setTimeout(r, 50));
  const extra = await rawConnect(port);
  const ms = await extra.closed(HANDSHAKE_MS);
  assert.ok(ms < HANDSHAKE_MS, `closed after ${ms} ms`);
  assert.equal(count('max_connections'), before + 1);
  for (const h of held) h.socket.destroy();
});
