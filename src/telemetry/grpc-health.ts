// grpc.health.v1.Health on sluice's gRPC listener, backed by the HealthModel (or, on the
// training thread, by its HealthMirror): Check, List and Watch with the canonical semantics
// (see proto/health.proto). Watch streams are ended on drain so a graceful server shutdown is
// not held open by health watchers.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ServingStatus } from './health.ts';

export const HEALTH_PROTO_PATH = fileURLToPath(new URL('../../proto/health.proto', import.meta.url));
export const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';
const MAX_LISTED = 100;

interface CheckRequest {
  service: string;
}
interface CheckResponse {
  status: ServingStatus | 'UNKNOWN';
}
interface ListResponse {
  statuses: Record<string, CheckResponse>;
}

/** What the service reads: the node's HealthModel or a mirror of it on another thread ('change' on every update). */
export interface HealthStatusSource {
  serviceStatus(service: string): ServingStatus;
  knownServices(): string[];
  on(event: 'change', listener: () => void): unknown;
  off(event: 'change', listener: () => void): unknown;
}

let cached: grpc.ServiceDefinition | undefined;

/** The service definition loaded from proto/health.proto (enums as strings, defaults filled). */
export function healthServiceDefinition(): grpc.ServiceDefinition {
  if (cached !== undefined) return cached;
  const def = protoLoader.loadSync(HEALTH_PROTO_PATH, { keepCase: true, enums: String, defaults: true, longs: String });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  cached = pkg.grpc.health.v1.Health.service;
  return cached;
}

/** A client constructor for grpc.health.v1.Health (probes, tests, `sluice` tooling). */
export function healthClientConstructor(): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(healthServiceDefinition(), 'Health');
}

export class GrpcHealthService {
  private readonly watches = new Set<grpc.ServerWritableStream<CheckRequest, CheckResponse>>();

  constructor(private readonly health: HealthStatusSource) {}

  /** Adds the service to a gRPC server (before or after bindAsync). */
  addTo(server: grpc.Server): this {
    server.addService(healthServiceDefinition(), {
      Check: (call: grpc.ServerUnaryCall<CheckRequest, CheckResponse>, cb: grpc.sendUnaryData<CheckResponse>) => {
        const service = call.request.service;
        const status = this.health.serviceStatus(service);
        if (status === 'SERVICE_UNKNOWN') {
          cb({ code: grpc.status.NOT_FOUND, details: `unknown service "${service}"; known: ${this.health.knownServices().map((s) => JSON.stringify(s)).join(', ')}` });
          return;
        }
        cb(null, { status });
      },
      List: (_call: grpc.ServerUnaryCall<unknown, ListResponse>, cb: grpc.sendUnaryData<ListResponse>) => {
        const services = this.health.knownServices();
        if (services.length > MAX_LISTED) {
          cb({ code: grpc.status.RESOURCE_EXHAUSTED, details: `${services.length} services exceed the limit of ${MAX_LISTED}` });
          return;
        }
        const statuses: Record<string, CheckResponse> = {};
        for (const s of services) statuses[s] = { status: this.health.serviceStatus(s) };
        cb(null, { statuses });
      },
      Watch: (call: grpc.ServerWritableStream<CheckRequest, CheckResponse>) => this.watch(call),
    });
    return this;
  }

  private watch(call: grpc.ServerWritableStream<CheckRequest, CheckResponse>): void {
    const service = call.request.service;
    let last: ServingStatus | undefined;
    const push = (): void => {
      const status = this.health.serviceStatus(service);
      if (status === last) return;
      last = status;
      call.write({ status });
    };
    const stop = (): void => {
      this.health.off('change', push);
      this.watches.delete(call);
    };
    this.watches.add(call);
    this.health.on('change', push);
    call.on('cancelled', stop);
    call.on('close', stop);
    call.on('error', stop);
    push();
  }

  /** Open Watch streams (for tests and drain logging). */
  get watchers(): number {
    return this.watches.size;
  }

  /**
   * Sends the final status to every watcher and ends the streams with UNAVAILABLE (clients
   * retry with backoff, and find the next instance). Call during drain before server shutdown.
   */
  endWatches(reason = 'server is shutting down'): void {
    for (const call of [...this.watches]) {
      const status = this.health.serviceStatus(call.request.service);
      try {
        call.write({ status });
        call.emit('error', { code: grpc.status.UNAVAILABLE, details: reason });
      } catch {
        // The stream may have closed in the meantime; nothing to end.
      }
      this.watches.delete(call);
    }
  }
}
