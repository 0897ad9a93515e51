// Whether the engine's gRPC ingress can serve a node's listeners.grpc, or why not. The engine
// serves ModelInfer/ModelStreamInfer itself, TLS and mTLS, credential gates and audit included
// (the policy tables; engine-ingress.ts), writes access records from its per-call events and
// feeds the bulk governor (native/engine/latency_ring.h) and queues span records of sampled calls
// (native/engine/trace_context.h); whatever needs per-request JavaScript (PII rewriting, threat
// profiles) keeps the whole listener on the TypeScript ingress, and the node says why.
import type { SluiceConfig } from '../config/schema.ts';
import { tenantsNeedingSlowPath } from '../security/pii/policy.ts';

export interface EngineIngressContext {
  config: SluiceConfig;
  /** The inference segment's transport kind ('tcp', 'rdma'). */
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
 * (the hook still runs for the calls it relays).
 */
const ENGINE_SERVED_HOOKS: ReadonlySet<string> = new Set(['metrics', 'access-log', 'security', 'tracing']);

/** null: the engine can serve listeners.grpc; otherwise the reason it cannot (logged at warn). */
export function engineIngressRefusal(c: EngineIngressContext): string | null {
  const s = c.config.security;
  if (c.config.listeners.grpc === undefined) return 'no listeners.grpc';
  if (c.engineEnv === '0') return 'SLUICE_ENGINE=0';
  if (c.ingressEnv === '0') return 'SLUICE_ENGINE_INGRESS=0';
  if (c.transport !== 'tcp') return `the native engine does not serve ${c.transport} inference segments yet`;
  const slow = tenantsNeedingSlowPath(c.config);
  if (slow.size > 0) return `PII policies need the TypeScript path (tenants ${[...slow].join(', ')})`;
  if (s.threats.enabled) return 'security.threats needs the TypeScript path (per-request profiles)';
  const perRequest = c.hooks.filter((h) => !ENGINE_SERVED_HOOKS.has(h));
  if (perRequest.length > 0) return `ingress hooks run per request in TypeScript (${perRequest.join(', ')})`;
  return null;
}
