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
            const headers = headersOf(md);
            requestId = headers['x-request-id'] ?? randomUUID();
            gates.check({ requestId, action: gate.action, segment: gate.segment, model: null, bytes: 0, headers, protocol: `grpc:${descriptor.path}` }).then(
              (d) => {
                durable = d.durable;
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
