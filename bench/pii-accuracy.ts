// Grades the PII recognizers on the frozen labelled corpus (pii-corpus.ts): per class, a
// planted span is found when a match of the same class overlaps it (recall), and a match is
// right when it overlaps a planted span of its class (precision).
import { scanText } from '../src/security/pii/scanner.ts';
import { CORPUS_CLASSES, type CorpusClass, type CorpusDoc } from './pii-corpus.ts';

export interface ClassScore {
  cls: CorpusClass;
  planted: number;
  found: number;
  predicted: number;
  correct: number;
  recall: number;
  precision: number;
}

export function gradeRecognizers(docs: readonly CorpusDoc[], minConfidence = 0.5): ClassScore[] {
  const t = new Map<CorpusClass, ClassScore>(CORPUS_CLASSES.map((c) => [c, { cls: c, planted: 0, found: 0, predicted: 0, correct: 0, recall: 0, precision: 0 }]));
  for (const d of docs) {
    const matches = scanText(d.text, { minConfidence });
    for (const l of d.labels) {
      const s = t.get(l.cls)!;
      s.planted++;
      if (matches.some((m) => m.cls === l.cls && m.start < l.end && l.start < m.end)) s.found++;
    }
    for (const m of matches) {
      const s = t.get(m.cls)!;
      s.predicted++;
      if (d.labels.some((l) => l.cls === m.cls && m.start < l.end && l.start < m.end)) s.correct++;
    }
  }
  for (const s of t.values()) {
    s.recall = s.planted === 0 ? 1 : s.found / s.planted;
    s.precision = s.predicted === 0 ? 1 : s.correct / s.predicted;
  }
  return [...t.values()];
}
