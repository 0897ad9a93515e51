// Runs every recognizer over a text and returns the non-overlapping matches at or above the
// confidence floor: where spans overlap, the higher score wins (then the longer span).
import type { PiiClass, PiiMatch } from './classes.ts';
import { personNameRecognizer } from './names.ts';
import { PATTERN_RECOGNIZERS, scoreWithContext, type Recognizer } from './recognizers.ts';

export const RECOGNIZERS: readonly Recognizer[] = [...PATTERN_RECOGNIZERS, personNameRecognizer];

export interface ScanOptions {
  /** Only these classes (default: all). */
  classes?: ReadonlySet<PiiClass>;
  /** Matches scoring below this are dropped (default 0.5). */
  minConfidence?: number;
}

export function scanText(text: string, opts: ScanOptions = {}): PiiMatch[] {
  const floor = opts.minConfidence ?? 0.5;
  const found: PiiMatch[] = [];
  for (const r of RECOGNIZERS) {
    if (opts.classes !== undefined && !opts.classes.has(r.cls)) continue;
    for (const c of r.find(text)) {
      if (c.end <= c.start) continue;
      const score = scoreWithContext(r, text, c);
      if (score >= floor) found.push({ cls: r.cls, start: c.start, end: c.end, score: Math.round(score * 100) / 100, recognizer: r.name });
    }
  }
  if (found.length <= 1) return found;
  found.sort((a, b) => b.score - a.score || b.end - b.start - (a.end - a.start) || a.start - b.start);
  const kept: PiiMatch[] = [];
  for (const m of found) {
    if (!kept.some((k) => m.start < k.end && k.start < m.end)) kept.push(m);
  }
  return kept.sort((a, b) => a.start - b.start);
}
