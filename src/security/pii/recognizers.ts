// Pattern recognizers, one per identifier family, in the manner of Microsoft Presidio: a
// pattern proposes a span with a base confidence, a validator (checksum, structure) rejects
// it or sets the score, and context words within a short window raise (or lower) it.
import { isIPv6 } from 'node:net';
import { ibanLength, ibanValid, luhnValid, spanishIdValid, ssnStructureValid } from './checksums.ts';
import type { PiiClass } from './classes.ts';
import { HEALTH_CONTEXT, HEALTH_TERMS, MINOR_CONTEXT } from './lexicons.ts';

/** Added when a context word is near; subtracted when a negative context word is. */
export const CONTEXT_BOOST = 0.3;
export const NEGATIVE_PENALTY = 0.35;
/** Characters before (and after) a span searched for context words. */
const CONTEXT_BEFORE = 48;
const CONTEXT_AFTER = 24;

export interface Candidate {
  start: number;
  end: number;
  score: number;
}

export interface Recognizer {
  readonly name: string;
  readonly cls: PiiClass;
  /** Proposes spans with their score before context. */
  find(text: string): Iterable<Candidate>;
  readonly context?: readonly string[];
  readonly negative?: readonly string[];
}

/** A regex recognizer: `validate` returns the score (null rejects) and may narrow the span. */
function pattern(
  name: string,
  cls: PiiClass,
  re: RegExp,
  validate: (m: RegExpExecArray) => number | null | { score: number; start?: number; end?: number },
  ctx: { context?: readonly string[]; negative?: readonly string[]; hint?: string } = {},
): Recognizer {
  if (!re.global) throw new Error(`${name}: pattern must be global`);
  const { hint, ...words } = ctx;
  return {
    name,
    cls,
    ...words,
    *find(text: string) {
      // A substring every match contains: most texts lack it, and includes() is far cheaper than the regex.
      if (hint !== undefined && !text.includes(hint)) return;
      for (const m of text.matchAll(re)) {
        const v = validate(m as RegExpExecArray);
        if (v === null) continue;
        const start = m.index;
        if (typeof v === 'number') {
          yield { start, end: start + m[0].length, score: v };
        } else {
          yield { start: v.start ?? start, end: v.end ?? start + m[0].length, score: v.score };
        }
      }
    },
  };
}

/** Span of capture group `g` (the `d` flag gives indices). */
function groupSpan(m: RegExpExecArray, g: number): { start: number; end: number } | null {
  const span = m.indices?.[g];
  return span === undefined ? null : { start: span[0], end: span[1] };
}

const CARD_PREFIX = /^(?:4|5[1-5]|2[2-7]|3[47]|3[068]|35|6011|64[4-9]|65|62)/;

const card = pattern(
  'luhn_card',
  'payment_card',
  /(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])/g,
  (m) => {
    const digits = m[0].replace(/[ -]/g, '');
    if (digits.length < 13 || digits.length > 19 || !luhnValid(digits)) return null;
    // Mixed separators ("1234 5678-9012...") are not how cards are written.
    if (/ /.test(m[0]) && /-/.test(m[0])) return null;
    if (/^(\d)\1+$/.test(digits)) return null;
    return CARD_PREFIX.test(digits) ? 0.85 : 0.35;
  },
  { context: ['card', 'visa', 'mastercard', 'amex', 'credit', 'debit', 'pay', 'charge', 'cc '], negative: ['isbn', 'order', 'invoice', 'tracking', 'ticket', 'reference', 'serial'] },
);

const iban = pattern(
  'iban_mod97',
  'iban',
  /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?/g,
  (m) => {
    // Take exactly the country's length of characters (a following capitalised word may have been swallowed).
    const want = ibanLength(m[0].slice(0, 2));
    if (want === undefined) return null;
    let n = 0;
    let end = 0;
    for (; end < m[0].length && n < want; end++) if (m[0][end] !== ' ') n++;
    if (n !== want) return null;
    const s = m[0].slice(0, end);
    if (!ibanValid(s)) return null;
    return { score: 0.95, end: m.index + end };
  },
  { context: ['iban', 'account', 'transfer', 'wire', 'bank', 'refund'] },
);

const ssn = pattern(
  'us_ssn',
  'gov_id',
  // No backreference for "same separator twice": it makes V8's regex ~20x slower; checked below.
  /(?<![\d-])(\d{3})([- ])(\d{2})([- ])(\d{4})(?![\d-])/g,
  (m) => (m[2] === m[4] && ssnStructureValid(m[1] as string, m[3] as string, m[5] as string) ? (m[2] === '-' ? 0.5 : 0.3) : null),
  { context: ['ssn', 'social security', 'social', 'taxpayer', 'tin'], negative: ['phone', 'tel', 'fax', 'order', 'ticket'] },
);

const nino = pattern(
  'uk_nino',
  'gov_id',
  /\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b/g,
  () => 0.55,
  { context: ['national insurance', 'ni number', 'nino', 'ni no'] },
);

const spanishId = pattern(
  'es_dni_nie',
  'gov_id',
  /\b[XYZ]?\d{7,8}-?[A-Z]\b/g,
  (m) => (spanishIdValid(m[0].replace('-', '')) ? 0.75 : null),
  { context: ['dni', 'nie', 'documento', 'identidad', 'id number'] },
);

const PHONE_CONTEXT = ['phone', 'call', 'tel', 'mobile', 'cell', 'fax', 'contact', 'reach', 'whatsapp', 'sms', 'text me', 'number'];
const PHONE_NEGATIVE = ['isbn', 'order', 'invoice', 'ticket', 'serial', 'part number'];

function digitCount(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) n++;
  return n;
}

const phoneIntl = pattern(
  'phone_e164',
  'phone',
  /(?<![\w+])\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?!\d)/g,
  (m) => {
    const n = digitCount(m[0]);
    return n >= 8 && n <= 15 ? 0.7 : null;
  },
  { context: PHONE_CONTEXT, negative: PHONE_NEGATIVE, hint: '+' },
);

const phoneNanp = pattern(
  'phone_nanp',
  'phone',
  /(?<![\w.+-])(?:\([2-9]\d{2}\) ?|[2-9]\d{2}([-. ]))[2-9]\d{2}[-. ]\d{4}(?![\d-])/g,
  (m) => (m[1] === ' ' ? 0.4 : 0.6),
  { context: PHONE_CONTEXT, negative: PHONE_NEGATIVE },
);

const phoneTrunk = pattern(
  'phone_national_trunk',
  'phone',
  /(?<![\w.+-])0\d{2,4}[ -]?\d{3,4}[ -]?\d{3,4}(?![\d-])/g,
  (m) => {
    const n = digitCount(m[0]);
    return n >= 10 && n <= 11 ? 0.4 : null;
  },
  { context: PHONE_CONTEXT, negative: PHONE_NEGATIVE },
);

const email = pattern('email', 'email', /(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}\b/g, (m) => (m[0].includes('..') ? null : 0.9), {
  hint: '@',
  context: ['email', 'e-mail', 'mail', 'contact', 'cc'],
});

const IP_CONTEXT = ['ip', 'address', 'server', 'host', 'client', 'from', 'block', 'source', 'remote', 'addr'];
const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';

const ipv4 = pattern('ipv4', 'ip_address', new RegExp(`(?<![\\d.])${OCTET}(?:\\.${OCTET}){3}(?!\\d|\\.\\d)`, 'g'), () => 0.6, {
  context: IP_CONTEXT,
  negative: ['version', 'release', 'upgrade', 'v.', 'build', 'oid'],
});

const ipv6 = pattern(
  'ipv6',
  'ip_address',
  /(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])/g,
  (m) => (isIPv6(m[0]) && m[0].replace(/[^0-9A-Fa-f]/g, '').length >= 4 ? 0.75 : null),
  { context: IP_CONTEXT, hint: ':' },
);

const CREDENTIAL_CONTEXT = ['key', 'token', 'secret', 'password', 'credential', 'bearer', 'auth'];

const privateKey = pattern('private_key_block', 'credential', /-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY-----[\s\S]{0,16384}?-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY-----/g, () => 1, { hint: '-----BEGIN ' });

const jwt = pattern('jwt', 'credential', /\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}/g, () => 0.95, { context: CREDENTIAL_CONTEXT, hint: 'eyJ' });

const apiKey = pattern(
  'api_key_prefix',
  'credential',
  /\b(?:sk-(?:proj-|live-|test-)?[A-Za-z0-9_-]{20,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|(?:AKIA|ASIA)[A-Z2-7]{16}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,}|slk_[A-Za-z0-9_-]{20,})/g,
  () => 0.9,
  { context: CREDENTIAL_CONTEXT },
);

const secretAssignment = pattern(
  'secret_assignment',
  'credential',
  /\b(?:password|passwd|pwd|passphrase|secret|api[_-]?key|apikey|access[_-]?token|auth[_-]?token|client[_-]?secret|private[_-]?key)\s*[=:]\s*(["']?)([^\s"'`,;[\]<>]{4,256})\1/dgi,
  (m) => {
    const span = groupSpan(m, 2);
    return span === null ? null : { score: 0.85, ...span };
  },
);

const STREET_TYPES = 'Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|Parkway|Pkwy|Highway|Hwy|Square|Sq|Circle|Cir';

const streetAddress = pattern(
  'us_street_address',
  'street_address',
  new RegExp(
    `\\b\\d{1,6}(?: [A-Z][a-z]+){1,3} (?:${STREET_TYPES})\\b(?:,? (?:Apt|Suite|Unit|#) ?\\w{1,6})?(?:, [A-Z][a-z]+(?: [A-Z][a-z]+){0,2},? [A-Z]{2}(?: \\d{5}(?:-\\d{4})?)?)?`,
    'g',
  ),
  () => 0.6,
  { context: ['address', 'live', 'ship', 'deliver', 'located', 'office', 'mail', 'send'] },
);

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const health = pattern(
  'health_lexicon',
  'health',
  new RegExp(`\\b(?:${[...HEALTH_TERMS].sort((a, b) => b.length - a.length).map(escapeRe).join('|')})(?![\\w'])`, 'gi'),
  () => 0.45,
  { context: HEALTH_CONTEXT },
);

const WORD_ORDINALS = 'first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth';

const minorAge = pattern(
  'minor_age',
  'minor',
  /\b(?:(\d{1,2})[- ]?(?:years?|yrs?)[- ]old|(?:aged?|age:) ?(\d{1,2}))\b/gi,
  (m) => {
    const age = Number(m[1] ?? m[2]);
    return age < 18 ? 0.45 : null;
  },
  { context: MINOR_CONTEXT },
);

const minorGrade = pattern(
  'minor_school_grade',
  'minor',
  new RegExp(`\\b(?:in )?(?:(?:1st|2nd|3rd|[4-9]th|1[0-2]th)|${WORD_ORDINALS}) grade\\b|\\b(?:kindergarten|preschool|nursery school|elementary school|primary school|middle school|junior high)\\b`, 'gi'),
  () => 0.55,
  { context: MINOR_CONTEXT, negative: ['teacher', 'curriculum', 'average'] },
);

export const PATTERN_RECOGNIZERS: readonly Recognizer[] = [
  card,
  iban,
  ssn,
  nino,
  spanishId,
  phoneIntl,
  phoneNanp,
  phoneTrunk,
  email,
  ipv4,
  ipv6,
  privateKey,
  jwt,
  apiKey,
  secretAssignment,
  streetAddress,
  health,
  minorAge,
  minorGrade,
];

/** Lower-cased text before a span and after it up to the end of its sentence. */
export function contextWindow(text: string, start: number, end: number): { before: string; after: string } {
  let after = text.slice(end, end + CONTEXT_AFTER);
  const stop = after.search(/[.!?\n]\s/);
  if (stop !== -1) after = after.slice(0, stop);
  return { before: text.slice(Math.max(0, start - CONTEXT_BEFORE), start).toLowerCase(), after: after.toLowerCase() };
}

/**
 * The candidate's score after its recognizer's context words (clamped to [0, 1]): context
 * words count before the span or after it in the same sentence; negative words only before.
 */
export function scoreWithContext(r: Pick<Recognizer, 'context' | 'negative'>, text: string, c: Candidate): number {
  if (r.context === undefined && r.negative === undefined) return c.score;
  const win = contextWindow(text, c.start, c.end);
  let s = c.score;
  if (r.context?.some((w) => win.before.includes(w) || win.after.includes(w)) === true) s += CONTEXT_BOOST;
  if (r.negative?.some((w) => win.before.includes(w)) === true) s -= NEGATIVE_PENALTY;
  return Math.min(1, Math.max(0, s));
}
