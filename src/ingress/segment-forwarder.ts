// Sends calls to egress peers over the inference segment. The way across is a SegmentChannel:
// the TypeScript links of PeerLinks (link-segment-channel.ts) or, when the node's ingress runs
// on the native engine, the engine's links (src/engine/engine-segment-channel.ts); either way
// a call has a deadline, can be cancelled and fails at once if its link closes.
// With an UpstreamPolicy, calls are admitted (or shed), the peer is chosen by P2C with outlier
// ejection, and a call that failed before reaching the model is retried on another peer.
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { CallMethod } from '../wire/inference-envelope.ts';
import { LinkSegmentChannel } from './link-segment-channel.ts';
import type { PeerLinks } from './peer-links.ts';
import type { RequestContext } from './request-context.ts';
import { classifyFailure, type SegmentChannel } from './segment-call.ts';
import type { UpstreamPolicy } from './upstream-policy.ts';

export class SegmentForwarder {
  private readonly channel: SegmentChannel;
  private readonly logger: Logger;
  private readonly policy: UpstreamPolicy | undefined;

  /** `links`: PeerLinks (the TypeScript links) or any other SegmentChannel. */
  constructor(links: Pick<PeerLinks, 'pick' | 'isUp' | 'linkOf' | 'on'> | SegmentChannel, logger: Logger, policy?: UpstreamPolicy) {
    this.channel = 'callOnce' in links ? links : new LinkSegmentChannel(links, logger);
    this.logger = logger;
    this.policy = policy;
  }

  get inflight(): number {
    return this.channel.inflight;
  }

  /**
   * Sends `payload` (a serialized gRPC request) to an egress peer of the route and resolves
   * with the serialized response. Sets ctx.cancel while the call is out.
   */
  call(ctx: RequestContext, method: CallMethod, payload: Buffer, peers: readonly string[]): Promise<Buffer> {
    const policy = this.policy;
    if (policy === undefined) {
      let picked: string;
      try {
        picked = this.channel.pick(peers);
      } catch (err) {
        return Promise.reject(err);
      }
      return this.channel.callOnce(ctx, method, payload, picked);
    }
    try {
      policy.admit(ctx.deadline - Date.now());
    } catch (err) {
      return Promise.reject(err);
    }
    return this.callWithPolicy(policy, ctx, method, payload, peers);
  }

  private async callWithPolicy(policy: UpstreamPolicy, ctx: RequestContext, method: CallMethod, payload: Buffer, peers: readonly string[]): Promise<Buffer> {
    const started = performance.now();
    const tried = new Set<string>();
    const allowed = (name: string) => peers.includes(name) && this.channel.isUp(name);
    let answered = false;
    try {
      for (let attempt = 1; ; attempt++) {
        const lease = policy.pick(tried, allowed);
        // Nothing up: the channel says why, peer by peer.
        const picked = lease === undefined ? this.channel.pick(peers) : lease.key;
        const t0 = performance.now();
        try {
          const reply = await this.channel.callOnce(ctx, method, payload, picked);
          lease?.done(true, performance.now() - t0, performance.now());
          answered = true;
          return reply;
        } catch (err) {
          const e = err instanceof InferenceError ? err : new InferenceError(InferenceErrorCode.INTERNAL, (err as Error).message, { cause: err });
          const failure = classifyFailure(e);
          const outcome = lease?.done(!failure.upstreamFault, failure.upstreamFault ? performance.now() - t0 : Number.NaN, performance.now());
          if (outcome === 'ejected') this.logger.warn({ peer: picked, err: e.message }, 'egress peer ejected after consecutive failures');
          tried.add(picked);
          if (!policy.retry(failure, attempt, ctx.deadline - Date.now())) throw e;
          this.logger.info({ request_id: ctx.requestId, peer: picked, attempt, err: e.message }, 'request retried on another egress peer');
        }
      }
    } finally {
      policy.release(performance.now() - started, answered);
    }
  }
}
