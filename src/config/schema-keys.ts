// The keys a config schema allows at a path, for naming the nearest one when a key is unknown.
import type { z } from 'zod';

interface Def {
  type: string;
  shape?: Record<string, unknown>;
  innerType?: z.ZodType;
  element?: z.ZodType;
  valueType?: z.ZodType;
  in?: z.ZodType;
}

function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

/** Unwraps optional/default/prefault/nullable/readonly/pipe down to the schema that parses the value. */
function unwrap(schema: z.ZodType): z.ZodType {
  for (let s = schema; ; ) {
    const def = defOf(s);
    if (def.innerType !== undefined) s = def.innerType;
    else if (def.type === 'pipe' && def.in !== undefined) s = def.in;
    else return s;
  }
}

/** Object keys allowed at `path` (array indices and record keys step into elements), or [] if none. */
export function knownKeysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let s = unwrap(schema);
  for (const step of path) {
    const def = defOf(s);
    let next: z.ZodType | undefined;
    if (def.type === 'object' && typeof step === 'string') next = def.shape?.[step] as z.ZodType | undefined;
    else if (def.type === 'array') next = def.element;
    else if (def.type === 'record') next = def.valueType;
    if (next === undefined) return [];
    s = unwrap(next);
  }
  const def = defOf(s);
  return def.type === 'object' && def.shape !== undefined ? Object.keys(def.shape) : [];
}
