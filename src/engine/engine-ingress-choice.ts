// Whether the engine's gRPC ingress can serve a node's listeners.grpc, or why not. The engine
// serves ModelInfer/ModelStreamInfer itself, TLS and mTLS, credential gates and audit included
// (the policy tables; engine-ingress.ts), writes access records from its per-call events and
// feeds the bulk governor (native/engine/latency_ring.h) and queues span records of sampled calls
// (native/engine/trace_context.h). PII policies and threat profiles need per-request JavaScript
// only for their tenants: the engine relays those tenants' calls to the TypeScript ingress
// (engine-slow-path.ts) and feeds the threat detectors from its sampled tensor tap
// (engine-threat-tap.ts). Whatever else needs per-request JavaScript (other hooks) keeps the
// whole listener on the TypeScript ingress, and the node says why.
import type { SluiceConfig } from '../config/schema.ts';

export interface EngineIngressContext {
  config: SluiceConfig;
  /** The inference segment's transport kind ('tcp', 'rdma'): the engine serves both. */
  transport: string;
  /** process.env.SLUICE_ENGINE */
  engineEnv: string | undefined;
  /** process.env.SLUICE_ENGINE_INGRESS ('0': the TypeScript ingress only; the egress may stay on the engine) */
  ingressEnv?: string | undefined;
  /** telemetry.otlp (served from the engine's span records). */
  tracing: boolean;
  /** telemetry.accessLog (served from the engine's per-call records). */
  accessLog: boolean;
  /** Names of the node's ingress hooks ('metrics' and 'access-log' are served from the engine's events). */
  hooks: readonly string[];
}

/**
 * Ingress hooks whose work the engine does itself: request metrics and access records from its
 * per-call events, spans from its span records, and the security gates over its policy tables
 * (the hook still runs for the calls it relays). The threat profile hook acts only on profiled
 * tenants, whose calls the engine relays to TypeScript (engine-slow-path.ts), so it runs wherever
 * it has work.
 */
const ENGINE_SERVED_HOOKS: ReadonlySet<string> = new Set(['metrics', 'access-log', 'security', 'threat-profile', 'tracing']);

/** null: the engine can serve listeners.grpc; otherwise the reason it cannot (logged at warn). */
export function engineIngressRefusal(c: EngineIngressContext): string | null {
  if (c.config.listeners.grpc === undefined) return 'no listeners.grpc';
  if (c.engineEnv === '0') return 'SLUICE_ENGINE=0';
  if (c.ingressEnv === '0') return 'SLUICE_ENGINE_INGRESS=0';
  const perRequest = c.hooks.filter((h) => !ENGINE_SERVED_HOOKS.has(h));
  if (perRequest.length > 0) return `ingress hooks run per request in TypeScript (${perRequest.join(', ')})`;
  return null;
}
