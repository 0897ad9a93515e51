// The HTTP port is not shared: a second sluice on the same host:port fails to start with
// EADDRINUSE (as the gRPC port does), while the first keeps binding only its configured host.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, test } from 'node:test';
import { closedPort, startSluice, type SluiceProcess } from '../helpers/sluice-process.ts';

const key = randomBytes(32).toString('hex');

async function ingressConfig(host: string, port: number): Promise<object> {
  return {
    node: { name: `excl-${host}` },
    listeners: { http: { host, port } },
    segments: { inference: { key } },
    peers: [{ name: 'egress', segment: 'inference', host: '127.0.0.1', port: await closedPort() }],
    routes: [{ model: '*', peers: ['egress'] }],
    log: { level: 'warn' },
  };
}

function connectOutcome(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.setTimeout(3000, () => {
      s.destroy();
      resolve('timeout');
    });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
}

async function ipv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(0, '::1', () => s.close(() => resolve(true)));
  });
}

const running: SluiceProcess[] = [];
after(async () => {
  await Promise.all(running.map((p) => p.stop()));
});

test('a second instance on the same HTTP host:port gets EADDRINUSE; the first keeps serving on its host only', { timeout: 120_000 }, async () => {
  const port = await closedPort();
  const first = await startSluice(await ingressConfig('127.0.0.1', port), { name: 'excl-a' });
  running.push(first);
  assert.equal(first.endpoints.http, `127.0.0.1:${port}`);

  await assert.rejects(
    startSluice(await ingressConfig('127.0.0.1', port), { name: 'excl-b', timeoutMs: 60_000 }).then((p) => {
      running.push(p);
      return p;
    }),
    (err: Error) => /exited with 1 before ready/.test(err.message) && /EADDRINUSE/.test(err.message),
  );

  const res = await fetch(`http://127.0.0.1:${port}/v2/health/live`);
  assert.equal(res.status, 200);

  if (await ipv6Loopback()) {
    // Bound to 127.0.0.1 only: ::1 on the same port is free for another instance.
    assert.equal(await connectOutcome('::1', port), 'ECONNREFUSED');
    const v6 = await startSluice(await ingressConfig('::1', port), { name: 'excl-v6' });
    running.push(v6);
    assert.equal(v6.endpoints.http, `::1:${port}`);
  }
});
