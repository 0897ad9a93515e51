// Capabilities a principal (API key or token) carries. Each gates one kind of call:
// infer → inference requests, train → training transfers, admin → administrative calls.
import { SluiceError } from '../errors.ts';

export type Capability = 'infer' | 'train' | 'admin';
export const CAPABILITIES: readonly Capability[] = ['infer', 'train', 'admin'];

export function isCapability(v: unknown): v is Capability {
  return v === 'infer' || v === 'train' || v === 'admin';
}

/** Parses "infer,train" (CLI) or a claim array; rejects unknown names and an empty set. */
export function parseCapabilities(input: string | readonly unknown[]): Capability[] {
  const items = typeof input === 'string' ? input.split(',').map((s) => s.trim()).filter((s) => s !== '') : [...input];
  if (items.length === 0) throw new SluiceError('SLUICE_ERR_CAPABILITY_INVALID', 'expected at least one capability (infer, train, admin)');
  const out = new Set<Capability>();
  for (const c of items) {
    if (!isCapability(c)) throw new SluiceError('SLUICE_ERR_CAPABILITY_INVALID', `unknown capability ${JSON.stringify(c)}: expected infer, train or admin`);
    out.add(c);
  }
  return CAPABILITIES.filter((c) => out.has(c));
}

/** True when every capability in `wanted` is in `held` (a key may only narrow its scope). */
export function isSubset(wanted: readonly Capability[], held: readonly Capability[]): boolean {
  return wanted.every((c) => held.includes(c));
}
