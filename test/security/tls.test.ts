import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { request } from 'node:https';
import path from 'node:path';
import { connect, type ConnectionOptions } from 'node:tls';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import uWS from 'uWebSockets.js';
import { parseConfig } from '../../src/config/load.ts';
import { ClientCertAllowlist } from '../../src/security/client-cert-allowlist.ts';
import type { SecurityEvent } from '../../src/security/events.ts';
import { serveGrpcOverTls, type GrpcTlsBinding } from '../../src/security/grpc-tls.ts';
import { startHttpsFront } from '../../src/security/https-front.ts';
import { SecureListener } from '../../src/security/secure-listener.ts';
import { uwsSslOptions, type TlsConfig } from '../../src/security/tls-options.ts';
import { TestCa, type Issued } from '../helpers/pki.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dir = tempDir();
let ca: TestCa;
let rogueCa: TestCa;
let server: Issued;
let agent1: Issued;
let agent2: Issued;
let rogue: Issued;
let expired: Issued;
const allowlistFile = path.join(dir, 'agents.allow');
const events: SecurityEvent[] = [];
const sink = { emit: (e: SecurityEvent) => void events.push(e) };

function tlsConfig(mode: 'off' | 'require', extra: Partial<TlsConfig> = {}): TlsConfig {
  const clientCerts = mode === 'require' ? { mode, caFile: ca.cert, allowlistFile, reloadSeconds: 3600 } : { mode };
  const cfg = parseConfig({ security: { tls: { enabled: true, certFile: server.cert, keyFile: server.key, clientCerts, ...extra } } });
  return cfg.security.tls;
}

before(() => {
  ca = new TestCa(dir, 'agents-ca');
  rogueCa = new TestCa(dir, 'rogue-ca');
  server = ca.issue('sluice-server', { server: true });
  agent1 = ca.issue('agent-1');
  agent2 = ca.issue('agent-2');
  rogue = rogueCa.issue('agent-1');
  expired = ca.issue('agent-old', { startdate: '20200101000000Z', enddate: '20200102000000Z' });
  writeFileSync(allowlistFile, `# agents allowed to call sluice\n${agent1.fingerprint.toUpperCase().match(/../g)?.join(':')}  # agent-1\nsha256:${expired.fingerprint}\n`);
});

// A tiny service that reports which certificate the call came in with.
const whoami = {
  path: '/test.Who/Ami',
  requestStream: false,
  responseStream: false,
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
} as const;
const WhoClient = grpc.makeGenericClientConstructor({ ami: whoami }, 'Who');

function call(port: number, who: Issued | null): Promise<{ code: number; body: string }> {
  const creds = grpc.credentials.createSsl(readFileSync(ca.cert), who === null ? null : readFileSync(who.key), who === null ? null : readFileSync(who.cert));
  const client = new WhoClient(`localhost:${port}`, creds);
  return new Promise((resolve) => {
    client.makeUnaryRequest(whoami.path, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null, res?: Buffer) => {
      client.close();
      resolve({ code: err?.code ?? 0, body: res?.toString() ?? err?.details ?? '' });
    });
  });
}

async function waitFor(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(pred(), `timed out waiting for ${what}`);
}

test('gRPC over TLS with mTLS: allowlisted agents get through, everyone else is refused and audited', async () => {
  const allowlist = await ClientCertAllowlist.start({ file: allowlistFile, reloadSeconds: 3600 });
  const grpcServer = new grpc.Server();
  grpcServer.addService({ ami: whoami }, {
    ami: (c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const fp = c.getAuthContext()?.sslPeerCertificate?.fingerprint256 ?? 'none';
      cb(null, Buffer.from(fp.replace(/:/g, '').toLowerCase()));
    },
  });
  let binding: GrpcTlsBinding | null = null;
  try {
    binding = await serveGrpcOverTls(grpcServer, { name: 'grpc', host: '127.0.0.1', port: 0, tls: tlsConfig('require'), allowlist, events: sink });
    const port = binding.listener.address.port;

    const ok = await call(port, agent1);
    assert.deepEqual(ok, { code: 0, body: agent1.fingerprint });

    events.length = 0;
    assert.equal((await call(port, agent2)).code, grpc.status.UNAVAILABLE, 'CA-signed but not allowlisted');
    assert.ok(events.some((e) => e.type === 'tls.client_refused' && e.actor === `cert:${agent2.fingerprint}`));

    events.length = 0;
    assert.equal((await call(port, rogue)).code, grpc.status.UNAVAILABLE, 'same name, other CA');
    assert.equal((await call(port, expired)).code, grpc.status.UNAVAILABLE, 'allowlisted but expired');
    assert.equal((await call(port, null)).code, grpc.status.UNAVAILABLE, 'no client certificate');
    await waitFor(() => events.filter((e) => e.type === 'tls.handshake_failed').length >= 3, 'handshake failure events');
    assert.ok(events.every((e) => e.outcome === 'denied'));

    // Allow agent-2 without a restart: edit the file, send SIGHUP.
    writeFileSync(allowlistFile, readFileSync(allowlistFile, 'utf8') + `${agent2.fingerprint}\n`);
    const reloaded = once(allowlist, 'reload');
    process.kill(process.pid, 'SIGHUP');
    await reloaded;
    assert.equal((await call(port, agent2)).code, 0);

    // Revoke agent-1 while it holds a live connection: the connection is dropped, new ones refused.
    const creds = grpc.credentials.createSsl(readFileSync(ca.cert), readFileSync(agent1.key), readFileSync(agent1.cert));
    const live = new WhoClient(`localhost:${port}`, creds);
    await new Promise<void>((resolve, reject) => live.waitForReady(Date.now() + 5000, (e?: Error) => (e ? reject(e) : resolve())));
    events.length = 0;
    writeFileSync(allowlistFile, `${agent2.fingerprint}\n`);
    await allowlist.reload(false);
    assert.ok(events.some((e) => e.type === 'tls.client_revoked' && e.actor === `cert:${agent1.fingerprint}` && e.detail?.connections_closed === 1));
    await waitFor(() => live.getChannel().getConnectivityState(false) !== grpc.connectivityState.READY, 'the revoked connection to close');
    live.close();
    assert.equal((await call(port, agent1)).code, grpc.status.UNAVAILABLE);
  } finally {
    await binding?.close();
    grpcServer.forceShutdown();
    allowlist.close();
  }
});

function handshake(port: number, opts: ConnectionOptions): Promise<{ ok: boolean; protocol: string | null; cipher: string | null; error?: string }> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(ca.cert), ...opts }, () => {
      const r = { ok: true, protocol: s.getProtocol(), cipher: s.getCipher().name };
      s.destroy();
      resolve(r);
    });
    s.on('error', (e: Error & { code?: string }) => resolve({ ok: false, protocol: null, cipher: null, error: e.code ?? e.message }));
  });
}

test('client listeners accept TLS 1.2+ with allowlisted AEAD ciphers only', async () => {
  const listener = await SecureListener.listen({ name: 'http', host: '127.0.0.1', port: 0, tls: tlsConfig('off'), alpn: ['http/1.1'], allowlist: null, events: sink });
  listener.on('connection', (s) => s.end());
  try {
    const port = listener.address.port;
    assert.equal((await handshake(port, { maxVersion: 'TLSv1.1', minVersion: 'TLSv1' })).ok, false);
    assert.equal((await handshake(port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA' })).ok, false, 'CBC suites are not allowed');
    const t12 = await handshake(port, { maxVersion: 'TLSv1.2' });
    assert.deepEqual([t12.ok, t12.protocol], [true, 'TLSv1.2']);
    assert.match(t12.cipher ?? '', /GCM|CHACHA20/);
    const t13 = await handshake(port, {});
    assert.equal(t13.protocol, 'TLSv1.3');
  } finally {
    await listener.close();
  }
  const strict = await SecureListener.listen({ name: 'http', host: '127.0.0.1', port: 0, tls: tlsConfig('off', { minVersion: 'TLSv1.3' }), alpn: ['http/1.1'], allowlist: null, events: sink });
  try {
    assert.equal((await handshake(strict.address.port, { maxVersion: 'TLSv1.2' })).ok, false, 'a TLS 1.3 floor refuses 1.2');
  } finally {
    await strict.close();
  }
});

test('the server certificate is replaced on SIGHUP without a restart', async () => {
  const certFile = path.join(dir, 'rotating.crt');
  const keyFile = path.join(dir, 'rotating.key');
  copyFileSync(server.cert, certFile);
  copyFileSync(server.key, keyFile);
  const cfg = tlsConfig('off', { certFile, keyFile });
  const listener = await SecureListener.listen({ name: 'http', host: '127.0.0.1', port: 0, tls: cfg, alpn: ['http/1.1'], allowlist: null, events: sink });
  listener.on('connection', (s) => s.end());
  const peerFp = () =>
    new Promise<string>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: listener.address.port, servername: 'localhost', ca: readFileSync(ca.cert) }, () => {
        resolve((s.getPeerCertificate().fingerprint256 ?? '').replace(/:/g, '').toLowerCase());
        s.destroy();
      });
      s.on('error', reject);
    });
  try {
    assert.equal(await peerFp(), server.fingerprint);
    const next = ca.issue('sluice-server-2', { server: true });
    copyFileSync(next.cert, certFile);
    copyFileSync(next.key, keyFile);
    process.kill(process.pid, 'SIGHUP');
    let seen = '';
    for (let i = 0; i < 100 && seen !== next.fingerprint; i++) {
      await new Promise((r) => setTimeout(r, 10));
      seen = await peerFp();
    }
    assert.equal(seen, next.fingerprint);
  } finally {
    await listener.close();
  }
});

test('HTTP with mTLS: the TLS front admits allowlisted agents to the uWS app and refuses others', async () => {
  writeFileSync(allowlistFile, `${agent1.fingerprint}\n`);
  const allowlist = await ClientCertAllowlist.start({ file: allowlistFile, sighup: false });
  const app = uWS.App().get('/v2/health/live', (res) => void res.end('live'));
  const listenSocket = await new Promise<uWS.us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('uWS listen failed')))));
  const front = await startHttpsFront({ name: 'http', host: '127.0.0.1', port: 0, tls: tlsConfig('require'), allowlist, events: sink }, { host: '127.0.0.1', port: uWS.us_socket_local_port(listenSocket) });
  const get = (who: Issued) =>
    new Promise<string>((resolve) => {
      const req = request({ host: '127.0.0.1', servername: 'localhost', port: front.listener.address.port, path: '/v2/health/live', ca: readFileSync(ca.cert), key: readFileSync(who.key), cert: readFileSync(who.cert), agent: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(`${res.statusCode} ${body}`));
      });
      req.on('error', (e: Error & { code?: string }) => resolve(`error ${e.code ?? e.message}`));
      req.end();
    });
  try {
    assert.equal(await get(agent1), '200 live');
    events.length = 0;
    assert.match(await get(agent2), /^error/);
    assert.ok(events.some((e) => e.type === 'tls.client_refused' && e.detail?.listener === 'http'));
  } finally {
    await front.close();
    uWS.us_listen_socket_close(listenSocket);
    allowlist.close();
  }
});

test('without mTLS the native uWS SSLApp gets the same version floor and cipher allowlist', async () => {
  const opts = uwsSslOptions(tlsConfig('off'));
  assert.ok(opts !== null);
  assert.ok(!opts.ssl_ciphers.includes('TLS_'), 'only TLS 1.2 names reach BoringSSL');
  assert.equal(uwsSslOptions(tlsConfig('require')), null, 'mTLS goes through the front');
  const app = uWS.SSLApp(opts).get('/*', (res) => void res.end('ok'));
  const ls = await new Promise<uWS.us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('listen failed')))));
  try {
    const port = uWS.us_socket_local_port(ls);
    assert.equal((await handshake(port, { maxVersion: 'TLSv1.1', minVersion: 'TLSv1' })).ok, false);
    assert.equal((await handshake(port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA' })).ok, false);
    assert.equal((await handshake(port, { maxVersion: 'TLSv1.2' })).ok, true);
  } finally {
    uWS.us_listen_socket_close(ls);
  }
});

after(() => events.splice(0));
