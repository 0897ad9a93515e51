// Per-tenant token buckets (requests per second with a burst) and request size limits, from
// `security.rateLimits`: a tenant's own entry overrides the defaults field by field.
import type { SecurityConfig } from '../config/schema.ts';
import type { SharedRateBuckets } from './shared-rate-buckets.ts';

export interface TenantLimits {
  requestsPerSecond: number;
  burst: number;
  maxRequestBytes: number;
}

interface Bucket {
  tokens: number;
  /** performance.now() of the last refill. */
  at: number;
  limits: TenantLimits;
}

export class TenantRateLimiter {
  private readonly cfg: SecurityConfig['rateLimits'];
  private readonly buckets = new Map<string, Bucket>();
  private shared: SharedRateBuckets | null = null;

  constructor(cfg: SecurityConfig['rateLimits']) {
    this.cfg = cfg;
  }

  limitsFor(tenant: string): TenantLimits {
    const own = this.cfg.tenants[tenant];
    const d = this.cfg.default;
    return {
      requestsPerSecond: own?.requestsPerSecond ?? d.requestsPerSecond,
      burst: own?.burst ?? d.burst,
      maxRequestBytes: own?.maxRequestBytes ?? d.maxRequestBytes,
    };
  }

  /**
   * Tenants with a slot in `buckets` take from it from now on: the engine's ingress takes from
   * the same slots, so such a tenant has one bucket across HTTP, WebSocket and both gRPC paths.
   */
  shareBuckets(buckets: SharedRateBuckets): void {
    this.shared = buckets;
  }

  /** Takes one token: 0 when allowed, else milliseconds until the next token. */
  take(tenant: string, nowMs = performance.now()): number {
    const fromShared = this.shared?.take(tenant) ?? null;
    if (fromShared !== null) return fromShared;
    let b = this.buckets.get(tenant);
    if (b === undefined) {
      const limits = this.limitsFor(tenant);
      b = { tokens: limits.burst, at: nowMs, limits };
      this.buckets.set(tenant, b);
    } else {
      const refill = ((nowMs - b.at) / 1000) * b.limits.requestsPerSecond;
      b.tokens = Math.min(b.limits.burst, b.tokens + refill);
      b.at = nowMs;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) / b.limits.requestsPerSecond) * 1000);
  }
}
