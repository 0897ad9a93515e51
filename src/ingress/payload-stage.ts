// A stage that may rewrite an inference call's serialized request and response (the PII
// policy is one). It sits on the TypeScript path after the hooks (so the tenant is known);
// calls for which `wants` is false pass through untouched, which is how tenants without a
// policy pay nothing but that one check.
import type { RequestContext } from './request-context.ts';

export interface PayloadStage {
  readonly name: string;
  /** True when this call's payloads go through the stage (decided once the hooks have run). */
  wants(ctx: RequestContext): boolean;
  /** The request to forward; may throw an InferenceError to refuse the call. */
  request(ctx: RequestContext, payload: Buffer): Buffer | Promise<Buffer>;
  /** The response to answer with. */
  response(ctx: RequestContext, payload: Buffer): Buffer;
}
