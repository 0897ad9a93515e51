// The grpc-js servers carrying training Pushes advertise a wide HTTP/2 receive window (stream
// and connection), checked from a raw HTTP/2 client's view of the server's settings and window.
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { widenServerReceiveWindow } from '../../src/grpc/server-receive-window.ts';

const WINDOW = 8 * 1024 * 1024;

async function bind(server: grpc.Server): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
}

/** The server's SETTINGS initial window and the connection window it opened, as a client sees them. */
async function windowsOf(port: number): Promise<{ stream: number; connection: number }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const settings = await new Promise<http2.Settings>((resolve, reject) => {
      session.once('remoteSettings', resolve);
      session.once('error', reject);
    });
    // The connection's WINDOW_UPDATE follows the settings; give it a moment (bounded).
    for (let i = 0; i < 50 && (session.state.remoteWindowSize ?? 0) <= 65_535; i++) await sleep(10);
    return { stream: settings.initialWindowSize ?? 65_535, connection: session.state.remoteWindowSize ?? 0 };
  } finally {
    session.destroy();
  }
}

test('a widened grpc-js server advertises the window for streams and the connection', async () => {
  const server = new grpc.Server();
  widenServerReceiveWindow(server, WINDOW);
  const port = await bind(server);
  try {
    const w = await windowsOf(port);
    assert.equal(w.stream, WINDOW);
    assert.equal(w.connection, WINDOW);
  } finally {
    server.forceShutdown();
  }
});

test('a plain grpc-js server keeps the 64 KiB default (what the widening changes)', async () => {
  const server = new grpc.Server();
  const port = await bind(server);
  try {
    const w = await windowsOf(port);
    assert.equal(w.stream, 65_535);
  } finally {
    server.forceShutdown();
  }
});

test('window sizes outside HTTP/2 limits are refused', () => {
  assert.throws(() => widenServerReceiveWindow(new grpc.Server(), 1024), /windowBytes must be an integer in \[65535, 2\^31-1\], got 1024/);
});
