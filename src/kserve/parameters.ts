// Inference parameters between their JSON form (REST: plain values) and InferParameter.
import { InferenceError, InferenceErrorCode } from './inference-error.ts';
import type { InferParameterMsg, LongLike, ParameterMap } from './proto.ts';

function longToJson(v: number | LongLike, unsigned: boolean): number | string {
  if (typeof v === 'number') return v;
  const n = v.toNumber();
  if (Number.isSafeInteger(n)) return n;
  const lo = BigInt(v.low >>> 0);
  const hi = BigInt(v.high >>> 0);
  const u = (hi << 32n) | lo;
  return (unsigned ? u : BigInt.asIntN(64, u)).toString();
}

export function parameterToJson(p: InferParameterMsg): unknown {
  switch (p.parameterChoice) {
    case 'boolParam':
      return p.boolParam;
    case 'int64Param':
      return longToJson(p.int64Param!, false);
    case 'stringParam':
      return p.stringParam;
    case 'doubleParam':
      return p.doubleParam;
    case 'uint64Param':
      return longToJson(p.uint64Param!, true);
    default:
      return null;
  }
}

export function parametersToJson(map: ParameterMap | undefined, skip?: ReadonlySet<string>): Record<string, unknown> | undefined {
  if (map === undefined) return undefined;
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(map)) {
    if (skip?.has(k)) continue;
    (out ??= {})[k] = parameterToJson(v);
  }
  return out;
}

export function parameterFromJson(value: unknown, what: string): InferParameterMsg {
  if (typeof value === 'boolean') return { boolParam: value };
  if (typeof value === 'string') return { stringParam: value };
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) return { int64Param: value };
    if (Number.isFinite(value)) return { doubleParam: value };
  }
  throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `${what}: parameter values must be booleans, numbers or strings`);
}

/** JSON parameters object -> InferParameter map, leaving out the HTTP-only keys in `skip`. */
export function parametersFromJson(value: unknown, what: string, skip?: ReadonlySet<string>): ParameterMap | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `${what}: "parameters" must be an object`);
  }
  let out: ParameterMap | undefined;
  for (const [k, v] of Object.entries(value)) {
    if (skip?.has(k)) continue;
    (out ??= {})[k] = parameterFromJson(v, `${what} parameter '${k}'`);
  }
  return out;
}
