// The training plane's components in the node's HealthModel (the main thread owns it; the
// training thread reports): `training-thread`, `segment:training` while the training segment
// listener is open, and `peer:<name>` per configured training peer, up while a link to it is
// open. All are shown (/health, sluice_component_up) and none gates readiness: inference must
// not leave the load balancer because the training plane or one training peer failed, and
// links to training peers open only on the first transfer.
import type { SluiceConfig } from '../config/schema.ts';
import type { HealthHandle, HealthModel } from '../telemetry/health.ts';
import { TENSOR_TRANSFER_SERVICE as TRAINING_SERVICE } from '../training/proto.ts';
import type { TrainingThreadEndpoints } from './training-thread-messages.ts';

export class TrainingHealth {
  private readonly thread: HealthHandle;
  private segment: HealthHandle | undefined;
  private readonly peers = new Map<string, HealthHandle>();

  constructor(
    private readonly health: HealthModel,
    config: SluiceConfig,
  ) {
    this.thread = health.register('training-thread', { kind: 'other', services: [TRAINING_SERVICE], critical: false });
    const inferencePeers = new Set(config.peers.filter((p) => p.segment === 'inference').map((p) => p.name));
    for (const p of config.peers.filter((x) => x.segment === 'training')) {
      // A name both segments use keeps `peer:<name>` for the inference link (registered later).
      const name = inferencePeers.has(p.name) ? `peer:training:${p.name}` : `peer:${p.name}`;
      const h = health.register(name, { kind: 'peer', services: [TRAINING_SERVICE], critical: false });
      h.down(`no link yet to ${p.host}:${p.port} (opened by the first transfer)`);
      this.peers.set(p.name, h);
    }
  }

  /** The thread is serving: TensorTransfer on `endpoints.service`, the segment listener if it has one. */
  threadReady(endpoints: TrainingThreadEndpoints): void {
    this.thread.up(endpoints.service);
    if (endpoints.segment !== undefined) this.segment = this.health.register('segment:training', { kind: 'segment', services: [TRAINING_SERVICE], critical: false, up: true });
  }

  /** The thread's report on a link to a configured training peer. */
  peerLink(peer: string, up: boolean, detail: string): void {
    const h = this.peers.get(peer);
    if (up) h?.up(detail);
    else h?.down(detail);
  }

  /** The thread ended unexpectedly: its listener and links went with it. */
  threadExited(reason: string): void {
    this.thread.down(reason);
    this.segment?.down(reason);
    for (const h of this.peers.values()) h.down(reason);
  }
}
