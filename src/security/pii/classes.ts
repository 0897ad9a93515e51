// The PII classes the policy engine knows, and the typed token each is replaced with.
export const PII_CLASSES = [
  'email',
  'phone',
  'payment_card',
  'gov_id',
  'iban',
  'ip_address',
  'credential',
  'street_address',
  'person_name',
  'health',
  'minor',
] as const;

export type PiiClass = (typeof PII_CLASSES)[number];

export function isPiiClass(v: string): v is PiiClass {
  return (PII_CLASSES as readonly string[]).includes(v);
}

/** `[EMAIL]`, `[PAYMENT_CARD]`...: the label a token carries. */
export function tokenLabel(cls: PiiClass): string {
  return cls.toUpperCase();
}

const BY_LABEL = new Map<string, PiiClass>(PII_CLASSES.map((c) => [tokenLabel(c), c]));

export function classOfLabel(label: string): PiiClass | undefined {
  return BY_LABEL.get(label);
}

/** One recognized span of text. Offsets are UTF-16 indices into the scanned string. */
export interface PiiMatch {
  cls: PiiClass;
  start: number;
  end: number;
  /** Confidence in [0, 1] after checksums and context words. */
  score: number;
  /** Which recognizer found it (for audit detail and debugging; never the value). */
  recognizer: string;
}
