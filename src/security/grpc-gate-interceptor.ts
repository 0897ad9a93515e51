// The gate pipeline as a grpc-js server interceptor, for services that do not go through the
// inference gateway: sluice's training service (`train` on the training segment) and admin
// calls (`admin`). A call is held at its metadata until the gates decide; a refusal ends it with
// the gate's status (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED, ...), its message and
// x-request-id, before any message reaches the handler; an allowed call's final status waits
// for its audit entry to be durable.
//   new grpc.Server({ interceptors: [gateInterceptor(runtime.gates, (path) => ...)] })
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { toInferenceError } from '../kserve/inference-error.ts';
import type { SegmentName } from '../transport/types.ts';
import type { Capability } from './capabilities.ts';
import type { GateChecker } from './gates.ts';

export interface GatedMethod {
  action: Capability;
  segment: SegmentName | null;
}

/**
 * Metadata the interceptor sets on an allowed call to the tenant id the gates resolved (and
 * removes from every incoming call first, so a client cannot claim a tenant): the handler reads
 * it with gatedTenantId (the training service attributes a push to its tenant this way).
 */
export const GATED_TENANT_KEY = 'x-sluice-gated-tenant';

/** The tenant id the gate interceptor put on a call's metadata (0: none). */
export function gatedTenantId(md: grpc.Metadata): number {
  const v = Number(md.get(GATED_TENANT_KEY)[0] ?? 0);
  return Number.isSafeInteger(v) && v >= 0 ? v : 0;
}

/** Which gate a method path needs; null lets the call through ungated (health checks). */
export type MethodGateMap = (path: string) => GatedMethod | null;

/** sluice.v1.TensorTransfer → train on the training segment; grpc.health.v1 → ungated; anything else → admin. */
export const defaultMethodGates: MethodGateMap = (path) => {
  if (path.startsWith('/grpc.health.v1.')) return null;
  if (path.startsWith('/sluice.v1.TensorTransfer/')) return { action: 'train', segment: 'training' };
  return { action: 'admin', segment: null };
};

function headersOf(md: grpc.Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(md.getMap())) if (typeof v === 'string') out[k] = v;
  return out;
}

export function gateInterceptor(gates: GateChecker, methods: MethodGateMap = defaultMethodGates): grpc.ServerInterceptor {
  return (descriptor, call) => {
    const gate = methods(descriptor.path);
    if (gate === null) return new grpc.ServerInterceptingCall(call);
    let requestId = '';
    let durable: Promise<unknown> | undefined;
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (md, pass) => {
            md.remove(GATED_TENANT_KEY);
            const headers = headersOf(md);
            requestId = headers['x-request-id'] ?? randomUUID();
            gates.check({ requestId, action: gate.action, segment: gate.segment, model: null, bytes: 0, headers, protocol: `grpc:${descriptor.path}` }).then(
              (d) => {
                durable = d.durable;
                md.set(GATED_TENANT_KEY, String(d.tenant.id));
                pass(md);
              },
              (err: unknown) => {
                const e = toInferenceError(err);
                const trailers = new grpc.Metadata();
                trailers.set('x-request-id', requestId);
                call.sendStatus({ code: e.grpcStatus, details: e.message, metadata: trailers });
              },
            );
          },
        });
      },
      sendStatus: (status, next) => {
        if (durable === undefined || status.code !== grpc.status.OK) {
          next(status);
          return;
        }
        durable.then(
          () => next(status),
          () => next({ code: grpc.status.UNAVAILABLE, details: 'the audit log cannot record this call', metadata: status.metadata ?? new grpc.Metadata() }),
        );
      },
    });
  };
}
