import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { test } from 'node:test';
import fc from 'fast-check';
import type { SecurityEvent } from '../../src/security/events.ts';
import {
  WEBHOOK_ID_HEADER,
  WEBHOOK_SIGNATURE_HEADER,
  WEBHOOK_TIMESTAMP_HEADER,
  WebhookDispatcher,
  createWebhookVerifier,
  eventMatches,
  signWebhook,
  type WebhookCheck,
} from '../../src/security/webhooks.ts';

const SECRET = 'whsec-0123456789abcdef0123456789abcdef';
const event = (type: string): SecurityEvent => ({ type, tenant: 'acme', requestId: 'r1', actor: 'cert:ab', outcome: 'denied' });

interface Received {
  body: string;
  headers: IncomingMessage['headers'];
  check: WebhookCheck;
}

/** A real subscriber on loopback: verifies every delivery; answers with `status(n)` for the n-th request. */
async function receiver(status: (n: number) => number | 'hang' = () => 200) {
  const verifier = createWebhookVerifier({ secrets: [SECRET] });
  const got: Received[] = [];
  let n = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      got.push({ body, headers: req.headers, check: verifier.verify(body, req.headers) });
      const s = status(++n);
      if (s === 'hang') return;
      res.statusCode = s;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
  return {
    url,
    got,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

test('deliveries are signed over timestamp.body and verify at a real receiver; filters apply', async () => {
  const r = await receiver();
  const d = new WebhookDispatcher({ endpoints: [{ url: r.url, secret: SECRET, events: ['tls.*', 'audit.failure'] }], node: 'n1' });
  try {
    d.dispatch(event('tls.client_refused'));
    d.dispatch(event('infer.request')); // not subscribed
    d.dispatch(event('audit.failure'));
    await d.idle();
    assert.equal(r.got.length, 2);
    for (const g of r.got) {
      assert.ok(g.check.ok, JSON.stringify(g.check));
      assert.equal(g.check.payload.id, g.headers[WEBHOOK_ID_HEADER]);
      assert.equal(g.check.payload.node, 'n1');
    }
    assert.deepEqual(r.got.map((g) => (g.check.ok ? g.check.payload.event.type : '')), ['tls.client_refused', 'audit.failure']);
  } finally {
    d.close();
    await r.close();
  }
});

test('failed deliveries are retried with backoff, keeping their id; after maxAttempts they are given up', async () => {
  const r = await receiver((n) => (n <= 2 ? 503 : 200));
  const d = new WebhookDispatcher({ endpoints: [{ url: r.url, secret: SECRET, events: ['*'] }], baseDelayMs: 20, maxDelayMs: 100 });
  try {
    d.dispatch(event('policy.denied'));
    await d.idle();
    assert.equal(r.got.length, 3);
    assert.equal(new Set(r.got.map((g) => g.headers[WEBHOOK_ID_HEADER])).size, 1, 'one delivery id across attempts');
    assert.deepEqual(d.stats, { queued: 1, delivered: 1, retried: 2, failed: 0, dropped: 0 });
  } finally {
    d.close();
    await r.close();
  }
  const dead = await receiver(() => 500);
  const d2 = new WebhookDispatcher({ endpoints: [{ url: dead.url, secret: SECRET, events: ['*'] }], baseDelayMs: 5, maxDelayMs: 10, maxAttempts: 3 });
  try {
    d2.dispatch(event('policy.denied'));
    await d2.idle();
    assert.equal(dead.got.length, 3);
    assert.equal(d2.stats.failed, 1);
  } finally {
    d2.close();
    await dead.close();
  }
});

test('a hung subscriber never blocks dispatch: the queue is bounded and overflow is counted', async () => {
  const r = await receiver(() => 'hang');
  const d = new WebhookDispatcher({ endpoints: [{ url: r.url, secret: SECRET, events: ['*'] }], maxQueue: 5, concurrency: 2, timeoutMs: 60_000 });
  try {
    const t0 = performance.now();
    for (let i = 0; i < 50; i++) d.dispatch(event('policy.denied'));
    const spent = performance.now() - t0;
    assert.ok(spent < 1000, `dispatch returned in ${spent} ms`);
    assert.equal(d.stats.queued, 5);
    assert.equal(d.stats.dropped, 45);
  } finally {
    d.close();
    await r.close();
  }
});

test('the verifier rejects stale, future, replayed, re-signed and tampered deliveries', () => {
  let clock = 1_800_000_000;
  const v = createWebhookVerifier({ secrets: ['old-secret', SECRET], now: () => clock });
  const body = JSON.stringify({ id: 'd-1', time: 't', node: 'n', event: event('tls.client_refused') });
  const headers = (ts: number, b = body, secret = SECRET) => ({ [WEBHOOK_TIMESTAMP_HEADER]: String(ts), [WEBHOOK_SIGNATURE_HEADER]: signWebhook(secret, ts, b) });
  assert.equal(v.verify(body, headers(clock - 301)).ok, false);
  assert.deepEqual(v.verify(body, headers(clock - 301)), { ok: false, reason: 'stale' });
  assert.deepEqual(v.verify(body, headers(clock + 301)), { ok: false, reason: 'future' });
  assert.deepEqual(v.verify(body, headers(clock, body, 'wrong-secret')), { ok: false, reason: 'bad-signature' });
  assert.deepEqual(v.verify(body.replace('acme', 'evil'), headers(clock)), { ok: false, reason: 'bad-signature' });
  // The timestamp is signed: moving it invalidates the signature.
  assert.deepEqual(v.verify(body, { ...headers(clock - 100), [WEBHOOK_TIMESTAMP_HEADER]: String(clock) }), { ok: false, reason: 'bad-signature' });
  assert.deepEqual(v.verify(body, {}), { ok: false, reason: 'missing-headers' });
  assert.equal(v.verify(body, headers(clock - 299)).ok, true, 'inside the window');
  assert.deepEqual(v.verify(body, headers(clock - 299)), { ok: false, reason: 'replayed' });
  assert.deepEqual(v.verify(body, headers(clock)), { ok: false, reason: 'replayed' }, 'a re-signed copy of a seen id too');
  assert.equal(v.verify(body.replace('d-1', 'd-2'), headers(clock, body.replace('d-1', 'd-2'), 'old-secret')).ok, true, 'rotation: old secret still accepted');
  clock += 10_000;
  assert.equal(v.verify(body, headers(clock)).ok, true, 'ids are forgotten after the window');
});

test('event filters: exact, prefix and wildcard', () => {
  assert.ok(eventMatches(['*'], 'x.y'));
  assert.ok(eventMatches(['tls.*'], 'tls.client_refused'));
  assert.ok(!eventMatches(['tls.*'], 'tlsx.a'));
  assert.ok(!eventMatches(['audit.failure'], 'audit.checkpoint'));
});

test('property: arbitrary bodies and headers never throw and never verify without the secret', () => {
  const v = createWebhookVerifier({ secrets: [SECRET], now: () => 1_800_000_000 });
  fc.assert(
    fc.property(fc.string(), fc.dictionary(fc.constantFrom(WEBHOOK_TIMESTAMP_HEADER, WEBHOOK_SIGNATURE_HEADER, 'x'), fc.string()), (body, headers) => !v.verify(body, headers).ok),
    { numRuns: 500 },
  );
});
