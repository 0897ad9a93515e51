// The PII policy on the inference path, as a payload stage of the gateway (gRPC, REST and
// WebSocket calls all pass it). For a call of a tenant with a policy it scans the text of the
// request (BYTES tensors, string parameters) and, per the policy's channels, of the response:
//   strict      matches become typed tokens ([EMAIL]) that cannot be reversed
//   reversible  matches become tokens ([EMAIL:<id>]) whose originals go to the tenant's vault
//               (durable before the request leaves the node); tokens in the response are
//               replaced by their originals when the policy covers the response channel
//   flag        bytes pass unchanged; the classes found go into an audit event (counts and
//               scores, never values) and the `pii-flags` response parameter and header
// Matches are counted in sluice_pii_matches_total{class,mode,tenant,channel}. Nothing here
// logs, audits or sends a matched value.
// A tenant in the threat monitor's stricter profile (`profiled`) is scanned in flag mode, every
// class on both channels, unless its own policy is stricter (strict, reversible); its events
// say `threat_profile: true`. It returns to its own policy (or none) when the profile ends.
import { Counter, type Registry } from 'prom-client';
import type { SecurityConfig } from '../../config/schema.ts';
import type { PayloadStage } from '../../ingress/payload-stage.ts';
import type { RequestContext } from '../../ingress/request-context.ts';
import { InferenceError, InferenceErrorCode } from '../../kserve/inference-error.ts';
import type { SecurityEvent } from '../events.ts';
import { PII_CLASSES, type PiiClass, type PiiMatch } from './classes.ts';
import { rewriteRequestTexts, rewriteResponseTexts, type TextEdit } from './infer-texts.ts';
import { PiiPolicyTable, type PiiChannel, type PiiPolicy } from './policy.ts';
import { replaceMatches, restoreTokens, strictToken } from './redact.ts';
import { scanText } from './scanner.ts';
import { PiiVault } from './vault.ts';

export const PII_FLAGS = 'pii-flags';

/** Where PII events go (the security runtime: audit log and webhooks). */
export interface PiiEventRecorder {
  record(e: SecurityEvent): Promise<unknown> | undefined;
}

interface ClassTally {
  count: number;
  minScore: number;
  maxScore: number;
}

interface CallState {
  policy: PiiPolicy;
  tenant: string;
  flags: Set<PiiClass>;
  /** Flag mode because of the threat profile, not the tenant's own policy. */
  profile: boolean;
}

/** The minimum confidence of the threat profile's flag mode (the policies' default). */
const PROFILE_MIN_CONFIDENCE = 0.5;

export interface PiiStageOptions {
  config: SecurityConfig;
  recorder: PiiEventRecorder | null;
  /** Registry the match counter is registered in (absent: counted but not exported). */
  registry?: Registry;
  /** Whether a tenant id is in the threat monitor's stricter profile now (security.threats). */
  profiled?: (tenantId: number) => boolean;
}

export class PiiStage implements PayloadStage {
  readonly name = 'pii';
  readonly table: PiiPolicyTable;
  private readonly vault: PiiVault | null;
  private readonly recorder: PiiEventRecorder | null;
  private readonly matches: Counter<'class' | 'mode' | 'tenant' | 'channel'>;
  private readonly calls = new WeakMap<RequestContext, CallState>();
  private readonly profiled: ((tenantId: number) => boolean) | undefined;

  private constructor(opts: PiiStageOptions, table: PiiPolicyTable, vault: PiiVault | null) {
    this.table = table;
    this.vault = vault;
    this.recorder = opts.recorder;
    this.profiled = opts.profiled;
    this.matches = new Counter({
      name: 'sluice_pii_matches_total',
      help: 'PII matches found on the inference path, by class, policy mode, tenant and channel (request or response).',
      labelNames: ['class', 'mode', 'tenant', 'channel'],
      registers: opts.registry === undefined ? [] : [opts.registry],
    });
  }

  /** Null when no policy is configured and no threat profile can ask for flag mode. Opens the vault when a policy is reversible. */
  static async create(opts: PiiStageOptions): Promise<PiiStage | null> {
    const table = new PiiPolicyTable(opts.config);
    if (table.empty && opts.profiled === undefined) return null;
    const v = opts.config.pii.vault;
    const vault = table.policies.some((p) => p.mode === 'reversible') && v !== undefined ? await PiiVault.open({ dir: v.path, keyFile: v.keyFile }) : null;
    return new PiiStage(opts, table, vault);
  }

  wants(ctx: RequestContext): boolean {
    return this.table.forTenantId(ctx.tenant) !== undefined || this.profiled?.(ctx.tenant) === true;
  }

  /** The policy of a call: the tenant's own, or flag mode while it is in the threat profile. */
  private policyOf(tenantId: number): { policy: PiiPolicy; profile: boolean } | undefined {
    const own = this.table.forTenantId(tenantId);
    if (own !== undefined && own.mode !== 'flag') return { policy: own, profile: false };
    if (this.profiled?.(tenantId) !== true) return own === undefined ? undefined : { policy: own, profile: false };
    const policy: PiiPolicy = {
      tenant: this.table.tenantName(tenantId),
      mode: 'flag',
      classes: new Set(PII_CLASSES),
      channels: new Set(['request', 'response']),
      minConfidence: Math.min(own?.minConfidence ?? PROFILE_MIN_CONFIDENCE, PROFILE_MIN_CONFIDENCE),
    };
    return { policy, profile: true };
  }

  request(ctx: RequestContext, payload: Buffer): Buffer | Promise<Buffer> {
    const p = this.policyOf(ctx.tenant);
    if (p === undefined) return payload;
    const { policy } = p;
    const state: CallState = { policy, tenant: this.table.tenantName(ctx.tenant), flags: new Set(), profile: p.profile };
    this.calls.set(ctx, state);
    if (!policy.channels.has('request')) return payload;
    if (policy.mode === 'reversible') return this.reversibleRequest(ctx, state, payload);
    return this.scanRequest(ctx, state, payload);
  }

  private async reversibleRequest(ctx: RequestContext, state: CallState, payload: Buffer): Promise<Buffer> {
    const vault = this.requireVault();
    await vault.load(state.tenant);
    const out = this.scanRequest(ctx, state, payload);
    try {
      await vault.flush();
    } catch {
      throw new InferenceError(InferenceErrorCode.AUDIT_UNAVAILABLE, 'the PII vault cannot record this request; it was not forwarded');
    }
    return out;
  }

  private requireVault(): PiiVault {
    if (this.vault === null) throw new InferenceError(InferenceErrorCode.INTERNAL, 'PII policy is reversible but no vault is configured');
    return this.vault;
  }

  private scanRequest(ctx: RequestContext, state: CallState, payload: Buffer): Buffer {
    const tally = new Map<PiiClass, ClassTally>();
    const out = rewriteRequestTexts(payload, this.editor(state, tally, 'request'));
    this.report(ctx, state, tally, 'request');
    return out;
  }

  response(ctx: RequestContext, payload: Buffer): Buffer {
    const state = this.calls.get(ctx);
    if (state === undefined) return payload;
    this.calls.delete(ctx);
    const { policy } = state;
    const tally = new Map<PiiClass, ClassTally>();
    let edit: TextEdit | undefined;
    if (policy.channels.has('response')) {
      if (policy.mode === 'reversible') {
        const vault = this.requireVault();
        edit = (text) => restoreTokens(text, (token) => vault.reveal(state.tenant, token))?.text;
      } else {
        edit = this.editor(state, tally, 'response');
      }
    }
    const out = rewriteResponseTexts(payload, edit, (): Record<string, string> => {
      if (policy.mode !== 'flag' || state.flags.size === 0) return {};
      const value = PII_CLASSES.filter((c) => state.flags.has(c)).join(',');
      ctx.responseHeaders = { ...(ctx.responseHeaders ?? {}), [PII_FLAGS]: value };
      return { [PII_FLAGS]: value };
    });
    this.report(ctx, state, tally, 'response');
    return out;
  }

  /** The text edit of one call and channel: scan, tally, and rewrite per the mode. */
  private editor(state: CallState, tally: Map<PiiClass, ClassTally>, channel: PiiChannel): TextEdit {
    const { policy } = state;
    return (text) => {
      const found = scanText(text, { classes: policy.classes, minConfidence: policy.minConfidence });
      if (found.length === 0) return undefined;
      for (const m of found) {
        const t = tally.get(m.cls);
        if (t === undefined) tally.set(m.cls, { count: 1, minScore: m.score, maxScore: m.score });
        else {
          t.count++;
          t.minScore = Math.min(t.minScore, m.score);
          t.maxScore = Math.max(t.maxScore, m.score);
        }
        state.flags.add(m.cls);
      }
      if (policy.mode === 'flag') return undefined;
      if (policy.mode === 'strict' || channel === 'response') return replaceMatches(text, found, (m: PiiMatch) => strictToken(m.cls));
      const vault = this.requireVault();
      return replaceMatches(text, found, (m, value) => vault.tokenize(state.tenant, m.cls, value));
    };
  }

  /** Metrics and the audit event for what one channel of a call matched (counts and scores only). */
  private report(ctx: RequestContext, state: CallState, tally: Map<PiiClass, ClassTally>, channel: PiiChannel): void {
    if (tally.size === 0) return;
    const classes: Record<string, { count: number; min_score: number; max_score: number }> = {};
    for (const [cls, t] of tally) {
      this.matches.inc({ class: cls, mode: state.policy.mode, tenant: state.tenant, channel }, t.count);
      classes[cls] = { count: t.count, min_score: t.minScore, max_score: t.maxScore };
    }
    const durable = this.recorder?.record({
      type: state.policy.mode === 'flag' ? 'pii.flagged' : state.policy.mode === 'strict' ? 'pii.redacted' : 'pii.tokenized',
      tenant: state.tenant === '*' ? null : state.tenant,
      requestId: ctx.requestId,
      actor: 'pii-policy',
      outcome: 'success',
      detail: { mode: state.policy.mode, channel, model: ctx.model, protocol: ctx.protocol, classes, ...(state.profile ? { threat_profile: true } : {}) },
    });
    if (durable === undefined) return;
    if (channel === 'request') {
      // The answer waits for the event to be durable, like the request's own audit entry.
      const held = durable.catch(() => {
        throw new InferenceError(InferenceErrorCode.AUDIT_UNAVAILABLE, 'the audit log cannot record this request; it was not answered');
      });
      ctx.commit = ctx.commit === undefined ? held : Promise.all([ctx.commit, held]);
    } else {
      durable.catch(() => undefined);
    }
  }
}
