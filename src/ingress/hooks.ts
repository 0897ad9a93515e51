// The seam where per-request policy and telemetry attach to the ingress (authentication,
// tenant binding, rate limits, metrics, audit). Hooks run in registration order before the
// request is routed; a hook refuses a request by throwing an InferenceError (its status and
// code reach the client as a gRPC status or an RFC 7807 problem). Response hooks run after the
// answer or error has been sent and must not throw.
import type { RequestContext, RequestOutcome } from './request-context.ts';

export interface IngressHook {
  readonly name: string;
  onRequest?(ctx: RequestContext): void | Promise<void>;
  onResponse?(ctx: RequestContext, outcome: RequestOutcome): void;
}

export class HookChain {
  private readonly requestHooks: IngressHook[] = [];
  private readonly responseHooks: IngressHook[] = [];

  add(hook: IngressHook): this {
    if (hook.onRequest !== undefined) this.requestHooks.push(hook);
    if (hook.onResponse !== undefined) this.responseHooks.push(hook);
    return this;
  }

  /** Names of every hook in the chain, in order of addition (each once). */
  get names(): string[] {
    return [...new Set([...this.requestHooks, ...this.responseHooks].map((h) => h.name))];
  }

  /** True when some hook needs the request headers (so servers copy them only then). */
  get wantsHeaders(): boolean {
    return this.requestHooks.length > 0;
  }

  /** Runs the request hooks; synchronous (undefined) when none returns a promise. */
  runRequest(ctx: RequestContext): void | Promise<void> {
    for (let i = 0; i < this.requestHooks.length; i++) {
      const r = this.requestHooks[i]!.onRequest!(ctx);
      if (r instanceof Promise) return this.continueAsync(ctx, r, i + 1);
    }
    return undefined;
  }

  private async continueAsync(ctx: RequestContext, pending: Promise<void>, from: number): Promise<void> {
    await pending;
    for (let i = from; i < this.requestHooks.length; i++) await this.requestHooks[i]!.onRequest!(ctx);
  }

  runResponse(ctx: RequestContext, outcome: RequestOutcome): void {
    for (const h of this.responseHooks) {
      try {
        h.onResponse!(ctx, outcome);
      } catch {
        // A telemetry hook must never break the data path.
      }
    }
  }
}
