// Which egress peers serve a model, from the config's `routes` (an exact model name wins over
// "*"). Routes without peers are for the egress side of a node and are not used here.
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';

export interface PeerRoute {
  model: string;
  peers: readonly string[];
}

export class RouteTable {
  private readonly exact = new Map<string, readonly string[]>();
  private wildcard: readonly string[] = [];

  constructor(routes: readonly PeerRoute[]) {
    for (const r of routes) {
      if (r.peers.length === 0) continue;
      if (r.model === '*') this.wildcard = [...this.wildcard, ...r.peers];
      else this.exact.set(r.model, [...(this.exact.get(r.model) ?? []), ...r.peers]);
    }
  }

  get empty(): boolean {
    return this.exact.size === 0 && this.wildcard.length === 0;
  }

  /** Peer names for the model; NOT_FOUND when no route names it. */
  peersFor(model: string): readonly string[] {
    const peers = this.exact.get(model) ?? this.wildcard;
    if (peers.length === 0) throw new InferenceError(InferenceErrorCode.MODEL_NOT_FOUND, `no route for model '${model}'`);
    return peers;
  }

  /** Whether the route of `model` includes `peer`. */
  routesTo(model: string, peer: string): boolean {
    return (this.exact.get(model) ?? this.wildcard).includes(peer);
  }

  /** Every peer named by a route, once each. */
  allPeers(): string[] {
    return [...new Set([...[...this.exact.values()].flat(), ...this.wildcard])];
  }

  /** Models named by a route (the wildcard excluded). */
  models(): string[] {
    return [...this.exact.keys()];
  }
}
