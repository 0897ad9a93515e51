// A read-only copy of the serving status of every gRPC service a HealthModel knows, for a
// thread that cannot read the model itself: the training thread answers grpc.health.v1 from it
// on the gRPC port it serves (a training-only node), while the main thread owns the model and
// sends each change across (src/node/training-plane.ts).
import { EventEmitter } from 'node:events';
import { OVERALL_SERVICE, type HealthModel, type ServingStatus } from './health.ts';

/** Service name ("" for the node as a whole) to its status; what crosses between threads. */
export type ServiceStatuses = Record<string, ServingStatus>;

/** The status of every service the model knows, now. */
export function serviceStatuses(model: HealthModel): ServiceStatuses {
  const out: ServiceStatuses = {};
  for (const s of model.knownServices()) out[s] = model.serviceStatus(s);
  return out;
}

/** Emits 'change' (no arguments) when an update changed any status, like HealthModel. */
export class HealthMirror extends EventEmitter {
  private statuses: ServiceStatuses;

  constructor(initial: ServiceStatuses) {
    super();
    this.statuses = { ...initial };
  }

  /** Replaces every status with the model's latest. */
  apply(statuses: ServiceStatuses): void {
    const before = this.statuses;
    this.statuses = { ...statuses };
    const keys = new Set([...Object.keys(before), ...Object.keys(statuses)]);
    if ([...keys].some((k) => before[k] !== statuses[k])) this.emit('change');
  }

  knownServices(): string[] {
    return Object.keys(this.statuses);
  }

  /** Unknown services are SERVICE_UNKNOWN, as in the model. */
  serviceStatus(service: string = OVERALL_SERVICE): ServingStatus {
    return Object.hasOwn(this.statuses, service) ? this.statuses[service]! : 'SERVICE_UNKNOWN';
  }
}
