// Which model server serves a model on this egress node: the `upstreams` of the route for the
// model (an exact name wins over "*"), taken round-robin. One client per address, shared.
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';
import { UpstreamClient } from './upstream-client.ts';

export interface UpstreamRoute {
  model: string;
  upstreams: readonly { address: string }[];
}

export class UpstreamPool {
  private readonly clients = new Map<string, UpstreamClient>();
  private readonly byModel = new Map<string, UpstreamClient[]>();
  private wildcard: UpstreamClient[] = [];
  private next = 0;

  constructor(routes: readonly UpstreamRoute[], maxMessageBytes: number) {
    for (const r of routes) {
      if (r.upstreams.length === 0) continue;
      const list = r.upstreams.map((u) => {
        let c = this.clients.get(u.address);
        if (c === undefined) {
          c = new UpstreamClient(u.address, maxMessageBytes);
          this.clients.set(u.address, c);
        }
        return c;
      });
      if (r.model === '*') this.wildcard = this.wildcard.concat(list);
      else this.byModel.set(r.model, (this.byModel.get(r.model) ?? []).concat(list));
    }
  }

  /** One client per distinct upstream address. */
  get all(): readonly UpstreamClient[] {
    return [...this.clients.values()];
  }

  get size(): number {
    return this.clients.size;
  }

  pick(model: string): UpstreamClient {
    const list = this.byModel.get(model) ?? this.wildcard;
    if (list.length === 0) {
      throw new InferenceError(InferenceErrorCode.MODEL_NOT_FOUND, `no upstream model server serves model '${model}' on this egress`);
    }
    const c = list[this.next % list.length]!;
    this.next = (this.next + 1) % 0x40000000;
    return c;
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
