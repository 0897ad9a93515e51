// The security gates seen from another thread (the training thread): a call's gate request
// crosses to the thread that owns the key store, JWT verifier, rate limits and the single audit
// writer, and the decision comes back, then (when audited) whether its entry is durable. One
// round trip per call (a Push is one call per tensor), never per message.
import { InferenceError, InferenceErrorCode, toInferenceError } from '../kserve/inference-error.ts';
import type { GrpcStatusCode } from '../kserve/status.ts';
import type { GateChecker, GateDecision, GateRequest } from './gates.ts';

export type GateMessage =
  | { type: 'gate.check'; id: number; req: GateRequest }
  | { type: 'gate.allowed'; id: number; decision: Omit<GateDecision, 'durable'>; audited: boolean }
  | { type: 'gate.refused'; id: number; error: { code: string; message: string; grpcStatus: number; httpStatus: number } }
  | { type: 'gate.durable'; id: number; ok: boolean };

interface Pending {
  resolve: (d: GateDecision) => void;
  reject: (e: unknown) => void;
  durable?: { resolve: () => void; reject: (e: unknown) => void };
}

/** The calling thread's side: a GateChecker whose checks run where `post` delivers them. */
export class RemoteGates implements GateChecker {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(private readonly post: (m: GateMessage) => void) {}

  check(req: GateRequest): Promise<GateDecision> {
    const id = this.nextId++;
    return new Promise<GateDecision>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.post({ type: 'gate.check', id, req: { ...req, headers: { ...req.headers } } });
    });
  }

  /** Takes the gate messages among the thread's messages; false for any other. */
  handle(m: { type: string }): boolean {
    const msg = m as GateMessage;
    switch (msg.type) {
      case 'gate.allowed': {
        const p = this.pending.get(msg.id);
        if (p === undefined) return true;
        let durable: Promise<unknown> | undefined;
        if (msg.audited) durable = new Promise<void>((resolve, reject) => (p.durable = { resolve, reject }));
        else this.pending.delete(msg.id);
        // An entry that fails to be durable is reported through `durable`; nobody may be waiting yet.
        durable?.catch(() => {});
        p.resolve({ ...msg.decision, durable });
        return true;
      }
      case 'gate.refused': {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        const e = msg.error;
        p?.reject(new InferenceError(e.code as InferenceErrorCode, e.message, { grpcStatus: e.grpcStatus as GrpcStatusCode, httpStatus: e.httpStatus }));
        return true;
      }
      case 'gate.durable': {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.ok) p?.durable?.resolve();
        else p?.durable?.reject(new Error('the audit log cannot record this call'));
        return true;
      }
      default:
        return false;
    }
  }

  /** The other thread went away: every waiting call is refused. */
  failAll(reason: string): void {
    for (const p of this.pending.values()) {
      p.reject(new InferenceError(InferenceErrorCode.AUTH_UNAVAILABLE, reason));
      p.durable?.reject(new Error(reason));
    }
    this.pending.clear();
  }
}

/** The owning thread's side: runs one gate request and posts the answer(s). */
export function answerGateCheck(gates: GateChecker, m: Extract<GateMessage, { type: 'gate.check' }>, post: (m: GateMessage) => void): void {
  gates.check(m.req).then(
    (d) => {
      const { durable, ...decision } = d;
      post({ type: 'gate.allowed', id: m.id, decision, audited: durable !== undefined });
      durable?.then(
        () => post({ type: 'gate.durable', id: m.id, ok: true }),
        () => post({ type: 'gate.durable', id: m.id, ok: false }),
      );
    },
    (err: unknown) => {
      const e = toInferenceError(err);
      post({ type: 'gate.refused', id: m.id, error: { code: e.code, message: e.message, grpcStatus: e.grpcStatus, httpStatus: e.httpStatus } });
    },
  );
}
