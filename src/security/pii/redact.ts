// Replacing matches with tokens, and putting originals back.
import { classOfLabel, tokenLabel, type PiiClass, type PiiMatch } from './classes.ts';
import { REVERSIBLE_TOKEN } from './vault.ts';

/** Replaces each match (sorted, non-overlapping, as scanText returns them) with `token(match, value)`. */
export function replaceMatches(text: string, matches: readonly PiiMatch[], token: (m: PiiMatch, value: string) => string): string {
  let out = '';
  let at = 0;
  for (const m of matches) {
    out += text.slice(at, m.start) + token(m, text.slice(m.start, m.end));
    at = m.end;
  }
  return out + text.slice(at);
}

/** The strict-mode token: `[EMAIL]`. */
export function strictToken(cls: PiiClass): string {
  return `[${tokenLabel(cls)}]`;
}

/**
 * Replaces every reversible token `lookup` knows with its original; unknown tokens (another
 * tenant's, or invented by the model) stay as they are. Returns undefined when none was replaced.
 */
export function restoreTokens(text: string, lookup: (token: string, cls: PiiClass) => string | undefined): { text: string; restored: number } | undefined {
  if (!text.includes('[')) return undefined;
  let restored = 0;
  const out = text.replace(REVERSIBLE_TOKEN, (token: string, label: string) => {
    const cls = classOfLabel(label);
    const v = cls === undefined ? undefined : lookup(token, cls);
    if (v === undefined) return token;
    restored++;
    return v;
  });
  return restored === 0 ? undefined : { text: out, restored };
}
