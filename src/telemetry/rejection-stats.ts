// Counters of refused traffic, bumped where the refusal happens (crypto open, policy gate,
// authentication) and read by the metrics registry at scrape time. Reasons are short constant
// strings chosen by the caller (e.g. "auth_tag", "replay", "cross_segment", "expired_token"),
// never client-supplied text, so the label set stays bounded.
import { peerRefusal, type PeerRefusalKind } from '../transport/errors.ts';
import type { SegmentName } from '../transport/types.ts';

export interface CountedPair {
  readonly a: string;
  readonly b: string;
  value: number;
}

/** A counter keyed by two short label values, kept as plain numbers. */
export class PairCounter {
  private readonly entries = new Map<string, CountedPair>();

  inc(a: string, b: string, by = 1): void {
    const key = `${a}\u0000${b}`;
    const e = this.entries.get(key);
    if (e === undefined) this.entries.set(key, { a, b, value: by });
    else e.value += by;
  }

  get(a: string, b: string): number {
    return this.entries.get(`${a}\u0000${b}`)?.value ?? 0;
  }

  all(): IterableIterator<CountedPair> {
    return this.entries.values();
  }
}

/** mtls: the TLS listeners (refused or revoked client certificates, failed handshakes). */
export type AuthMethod = 'mtls' | 'jwt' | 'api_key' | 'none';

export class RejectionStats {
  /** (segment, reason): frames that failed AEAD open, replay or nonce checks. */
  readonly cryptoRejections = new PairCounter();
  /** (segment, reason): traffic refused by segment/class/tenant policy. */
  readonly policyRejections = new PairCounter();
  /** (method, reason): client credentials refused. */
  readonly authRejections = new PairCounter();

  crypto(segment: SegmentName, reason: string): void {
    this.cryptoRejections.inc(segment, reason);
  }

  policy(segment: SegmentName | 'client', reason: string): void {
    this.policyRejections.inc(segment, reason);
  }

  auth(method: AuthMethod, reason: string): void {
    this.authRejections.inc(method, reason);
  }

  /** Counts a peer error under crypto or policy when it is one; returns whether it was. */
  peerError(segment: SegmentName, err: unknown): boolean {
    const r = classifyRejection(err);
    if (r === undefined) return false;
    if (r.kind === 'crypto') this.crypto(segment, r.reason);
    else this.policy(segment, r.reason);
    return true;
  }
}

export type RejectionKind = PeerRefusalKind;

/** Whether an error that ended a link or a handshake was a crypto or policy refusal, and why. */
export function classifyRejection(err: unknown): { kind: RejectionKind; reason: string } | undefined {
  return peerRefusal((err as { code?: unknown } | null)?.code);
}
