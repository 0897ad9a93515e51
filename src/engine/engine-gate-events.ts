// Records the gate decisions of the engine's gRPC ingress as src/security/gates.ts records its
// own: a refusal becomes auth.failed or policy.denied, an audited allowed call infer.request, a
// rate-limit refusal goes into the per-tenant, per-second summary (ratelimit.exceeded). The
// events arrive in the engine's event batches, each with its request id, and are appended
// through the node's SecurityRuntime (the audit log's group commit, webhooks, refusal metrics).
// A decision the engine holds the answer of (ticket != 0) is released once its entry is durable,
// or fails AUDIT_UNAVAILABLE when it cannot be; releases go back to the engine in one call per
// settled batch.
import { allowedEvent, refusalEvent, type GateRecorder, type SecurityGates } from '../security/gates.ts';
import type { EngineGateDecision } from './native-engine.ts';

/** Every engine gRPC call is a ModelInfer to the gates, streamed or not (as http2-grpc-ingress.ts says). */
const PROTOCOL = 'grpc:ModelInfer';

export interface AuditReleaser {
  releaseAudit(tickets: number[], durable: boolean): void;
}

export class EngineGateRecorder {
  readonly #engine: AuditReleaser;
  readonly #recorder: GateRecorder;
  readonly #gates: Pick<SecurityGates, 'noteThrottled'>;
  #durable: number[] = [];
  #failed: number[] = [];
  #flushQueued = false;

  constructor(engine: AuditReleaser, recorder: GateRecorder, gates: Pick<SecurityGates, 'noteThrottled'>) {
    this.#engine = engine;
    this.#recorder = recorder;
    this.#gates = gates;
  }

  onDecision(d: EngineGateDecision): void {
    if (d.throttled && d.tenant !== null) {
      this.#gates.noteThrottled({ requestId: d.requestId, action: 'infer' }, { actor: d.actor }, d.tenant);
      // A throttled refusal is never held; a ticket here would be an engine bug, not a reason to hang.
      if (d.ticket !== 0) this.#settle(d.ticket, true);
      return;
    }
    const model = d.model === '' ? null : d.model;
    const event = d.allowed
      ? allowedEvent({ requestId: d.requestId, action: 'infer', tenant: d.tenant, actor: d.actor, model, protocol: PROTOCOL, bytes: d.bytes })
      : refusalEvent({
          requestId: d.requestId,
          gate: d.gate,
          code: d.code,
          message: d.message,
          actor: d.actor,
          tenant: d.tenant,
          credential: d.credential,
          action: 'infer',
          model,
          protocol: PROTOCOL,
        });
    let durable: Promise<unknown> | undefined;
    try {
      durable = this.#recorder.record(event);
    } catch {
      durable = Promise.reject(new Error('audit record failed'));
    }
    if (d.ticket === 0) {
      durable?.catch(() => undefined);
      return;
    }
    const ticket = d.ticket;
    if (durable === undefined) {
      // No audit log (the table said to hold, the runtime has none): nothing to wait for.
      this.#settle(ticket, true);
      return;
    }
    durable.then(
      () => this.#settle(ticket, true),
      () => this.#settle(ticket, false),
    );
  }

  #settle(ticket: number, ok: boolean): void {
    (ok ? this.#durable : this.#failed).push(ticket);
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    // Entries of one group commit settle in the same turn: one release call for all of them.
    queueMicrotask(() => {
      this.#flushQueued = false;
      const durable = this.#durable;
      const failed = this.#failed;
      this.#durable = [];
      this.#failed = [];
      this.#engine.releaseAudit(durable, true);
      this.#engine.releaseAudit(failed, false);
    });
  }
}
