// Security events POSTed to subscribers, signed so they can trust them:
//   sluice-webhook-id:        the delivery id (also in the body; retries keep it)
//   sluice-webhook-timestamp: unix seconds when this attempt was signed
//   sluice-webhook-signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
// Subscribers check with createWebhookVerifier(): signature, a 5-minute window around the
// timestamp, and ids seen within the window (replays). Deliveries are queued (bounded; when
// full, new events are dropped and counted) and retried with exponential backoff and jitter;
// dispatch() never waits, so a slow or dead subscriber never slows the data path.
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { SecurityEvent } from './events.ts';

export const WEBHOOK_ID_HEADER = 'sluice-webhook-id';
export const WEBHOOK_TIMESTAMP_HEADER = 'sluice-webhook-timestamp';
export const WEBHOOK_SIGNATURE_HEADER = 'sluice-webhook-signature';
export const WEBHOOK_TOLERANCE_SECONDS = 300;

export function signWebhook(secret: string | Buffer, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** The JSON body of a delivery. */
export interface WebhookPayload {
  id: string;
  /** When sluice recorded the event (ISO 8601). */
  time: string;
  node: string;
  event: SecurityEvent;
}

export interface WebhookEndpoint {
  url: string;
  secret: string | Buffer;
  /** Event types to send; "*" for all, "tls.*" for a prefix. */
  events: readonly string[];
}

export interface WebhookDispatcherOptions {
  endpoints: readonly WebhookEndpoint[];
  node?: string;
  /** Deliveries waiting or in flight, across endpoints (default 1000). */
  maxQueue?: number;
  /** Attempts per delivery before it is given up (default 8). */
  maxAttempts?: number;
  timeoutMs?: number;
  /** First retry delay (default 500 ms); doubles per attempt up to maxDelayMs (default 60 s). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Deliveries in flight at once (default 4). */
  concurrency?: number;
}

export interface WebhookStats {
  queued: number;
  delivered: number;
  retried: number;
  failed: number;
  dropped: number;
}

interface Delivery {
  endpoint: WebhookEndpoint;
  body: string;
  id: string;
  attempt: number;
}

export function eventMatches(patterns: readonly string[], type: string): boolean {
  return patterns.some((p) => p === '*' || p === type || (p.endsWith('.*') && type.startsWith(p.slice(0, -1))));
}

export class WebhookDispatcher {
  private readonly opts: Required<Omit<WebhookDispatcherOptions, 'endpoints' | 'node'>> & Pick<WebhookDispatcherOptions, 'endpoints' | 'node'>;
  private readonly ready: Delivery[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly controllers = new Set<AbortController>();
  private inFlight = 0;
  private pending = 0;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  readonly stats: WebhookStats = { queued: 0, delivered: 0, retried: 0, failed: 0, dropped: 0 };

  constructor(opts: WebhookDispatcherOptions) {
    this.opts = { maxQueue: 1000, maxAttempts: 8, timeoutMs: 5000, baseDelayMs: 500, maxDelayMs: 60_000, concurrency: 4, ...opts };
  }

  /** Queues the event for every endpoint that wants it. Never blocks, never throws. */
  dispatch(event: SecurityEvent): void {
    if (this.closed) return;
    for (const endpoint of this.opts.endpoints) {
      if (!eventMatches(endpoint.events, event.type)) continue;
      if (this.pending >= this.opts.maxQueue) {
        this.stats.dropped++;
        continue;
      }
      const id = randomUUID();
      const payload: WebhookPayload = { id, time: new Date().toISOString(), node: this.opts.node ?? 'sluice', event };
      this.pending++;
      this.stats.queued++;
      this.ready.push({ endpoint, body: JSON.stringify(payload), id, attempt: 0 });
    }
    this.pump();
  }

  /** Resolves when nothing is queued, waiting to retry, or in flight. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops: pending retries are abandoned and in-flight requests aborted. */
  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const c of this.controllers) c.abort();
    this.ready.length = 0;
  }

  private pump(): void {
    while (!this.closed && this.inFlight < this.opts.concurrency && this.ready.length > 0) {
      const d = this.ready.shift() as Delivery;
      this.inFlight++;
      void this.attempt(d).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private settle(): void {
    this.pending--;
    if (this.pending === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private async attempt(d: Delivery): Promise<void> {
    d.attempt++;
    const timestamp = Math.floor(Date.now() / 1000);
    const controller = new AbortController();
    this.controllers.add(controller);
    const timer = setTimeout(() => controller.abort(), this.opts.timeoutMs);
    let ok = false;
    try {
      const res = await fetch(d.endpoint.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          [WEBHOOK_ID_HEADER]: d.id,
          [WEBHOOK_TIMESTAMP_HEADER]: String(timestamp),
          [WEBHOOK_SIGNATURE_HEADER]: signWebhook(d.endpoint.secret, timestamp, d.body),
        },
        body: d.body,
        signal: controller.signal,
        redirect: 'error',
      });
      await res.arrayBuffer().catch(() => undefined);
      ok = res.status >= 200 && res.status < 300;
    } catch {
      ok = false;
    } finally {
      clearTimeout(timer);
      this.controllers.delete(controller);
    }
    if (ok) {
      this.stats.delivered++;
      this.settle();
      return;
    }
    if (this.closed || d.attempt >= this.opts.maxAttempts) {
      this.stats.failed++;
      this.settle();
      return;
    }
    this.stats.retried++;
    // Exponential backoff with full jitter: spreads retries of many deliveries apart.
    const ceiling = Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** (d.attempt - 1));
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.ready.push(d);
      this.pump();
    }, delay);
    t.unref();
    this.timers.add(t);
  }
}

export type WebhookRejectReason = 'missing-headers' | 'malformed' | 'bad-signature' | 'stale' | 'future' | 'replayed';

export type WebhookCheck = { ok: true; payload: WebhookPayload } | { ok: false; reason: WebhookRejectReason };

export interface WebhookVerifierOptions {
  /** One secret, or several while rotating (any may match). */
  secrets: readonly (string | Buffer)[];
  toleranceSeconds?: number;
  /** Clock, unix seconds (tests). */
  now?: () => number;
}

export interface WebhookVerifier {
  /** Checks one delivery: `body` exactly as received, `headers` with lower-case names. */
  verify(body: string | Buffer, headers: Readonly<Record<string, string | string[] | undefined>>): WebhookCheck;
}

/** For subscribers: rejects bad signatures, stale or future timestamps, and replays within the window. */
export function createWebhookVerifier(opts: WebhookVerifierOptions): WebhookVerifier {
  if (opts.secrets.length === 0) throw new RangeError('at least one secret is required');
  const tolerance = opts.toleranceSeconds ?? WEBHOOK_TOLERANCE_SECONDS;
  const now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  const seen = new Map<string, number>(); // id -> unix seconds after which it may be forgotten
  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
  return {
    verify(body, headers) {
      const ts = one(headers[WEBHOOK_TIMESTAMP_HEADER]);
      const sig = one(headers[WEBHOOK_SIGNATURE_HEADER]);
      if (ts === undefined || sig === undefined) return { ok: false, reason: 'missing-headers' };
      if (!/^\d{1,12}$/.test(ts) || !/^v1=[0-9a-f]{64}$/.test(sig)) return { ok: false, reason: 'malformed' };
      const text = typeof body === 'string' ? body : body.toString('utf8');
      const got = Buffer.from(sig.slice(3), 'hex');
      const valid = opts.secrets.some((s) => timingSafeEqual(got, Buffer.from(signWebhook(s, Number(ts), text).slice(3), 'hex')));
      if (!valid) return { ok: false, reason: 'bad-signature' };
      const t = now();
      const stamp = Number(ts);
      if (stamp < t - tolerance) return { ok: false, reason: 'stale' };
      if (stamp > t + tolerance) return { ok: false, reason: 'future' };
      let payload: WebhookPayload;
      try {
        payload = JSON.parse(text) as WebhookPayload;
      } catch {
        return { ok: false, reason: 'malformed' };
      }
      if (typeof payload?.id !== 'string' || typeof payload.event !== 'object' || payload.event === null) return { ok: false, reason: 'malformed' };
      for (const [id, until] of seen) {
        if (until >= t) break; // insertion order is expiry order (same window for all)
        seen.delete(id);
      }
      // An id is remembered for as long as any signature over it could still be fresh.
      if (seen.has(payload.id)) return { ok: false, reason: 'replayed' };
      seen.set(payload.id, stamp + 2 * tolerance);
      return { ok: true, payload };
    },
  };
}
