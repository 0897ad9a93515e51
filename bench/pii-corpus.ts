// The labelled corpus the PII recognizers are graded on (`npm run bench -- pii`). FROZEN: this
// file and PII_CORPUS_SEED were committed before the recognizers were tuned, so the numbers
// grade the recognizers and not the other way round. Change it only as a new, separately
// committed corpus version (bump PII_CORPUS_VERSION) and say so in the results.
//
// Each document is a synthetic prompt: filler sentences with PII planted at known offsets
// (labels: class, start, end), or PII-free text that contains look-alikes (order numbers that
// fail Luhn, version strings, prices, dates, hashes, capitalised common words). The generator
// computes its own check digits; it imports nothing from the recognizers.
import { mulberry32 } from '../src/models/seeded-random.ts';

export const PII_CORPUS_VERSION = 1;
export const PII_CORPUS_SEED = 0x5eed_0016;

export const CORPUS_CLASSES = [
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
export type CorpusClass = (typeof CORPUS_CLASSES)[number];

export interface CorpusLabel {
  cls: CorpusClass;
  start: number;
  end: number;
}

export interface CorpusDoc {
  text: string;
  labels: CorpusLabel[];
}

type Rand = () => number;

function pick<T>(r: Rand, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)] as T;
}

function digits(r: Rand, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += String(Math.floor(r() * 10));
  return s;
}

function int(r: Rand, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

const FIRST = ['James', 'Mary', 'Robert', 'Patricia', 'John', 'Jennifer', 'Michael', 'Linda', 'David', 'Elizabeth', 'William', 'Barbara', 'Richard', 'Susan', 'Joseph', 'Jessica', 'Thomas', 'Sarah', 'Carlos', 'Maria', 'Wei', 'Priya', 'Ahmed', 'Fatima', 'Hiroshi', 'Olga', 'Lukas', 'Sofia', 'Emma', 'Noah'];
const LAST = ['Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis', 'Rodriguez', 'Martinez', 'Hernandez', 'Lopez', 'Wilson', 'Anderson', 'Taylor', 'Moore', 'Nguyen', 'Chen', 'Patel', 'Kowalski', 'Schmidt', 'Müller', 'Rossi', 'Kim', 'Singh', 'Okafor', 'Ivanova', 'Tanaka', 'Dubois', 'Larsen'];
const DOMAINS = ['example.com', 'mail.example.org', 'corp.example.net', 'uni.example.edu', 'example.co.uk', 'post.example.de', 'example.io'];
const STREETS = ['Oak', 'Maple', 'Main', 'Cedar', 'Elm', 'Washington', 'Lake', 'Hill', 'Park', 'Pine', 'Sunset', 'Church', 'Mill', 'River'];
const STREET_TYPES = ['Street', 'St', 'Avenue', 'Ave', 'Road', 'Rd', 'Boulevard', 'Blvd', 'Lane', 'Ln', 'Drive', 'Dr', 'Court', 'Way'];
const CITIES = ['Springfield, IL 62704', 'Portland, OR 97205', 'Austin, TX 78701', 'Denver, CO 80202', 'Madison, WI 53703'];
const HEALTH = ['diabetes', 'type 2 diabetes', 'HIV', 'hypertension', 'asthma', 'depression', 'chemotherapy', 'schizophrenia', 'bipolar disorder', 'breast cancer', 'hepatitis C', 'epilepsy', 'an opioid addiction', 'insulin', 'antidepressants', 'a pregnancy'];
const FILLER = [
  'Please summarise the following note for the weekly report.',
  'Translate the text below into French and keep the tone formal.',
  'The meeting moved to Thursday because the room was booked.',
  'Can you rewrite this paragraph so it reads more clearly?',
  'Our quarterly numbers improved by 4.5 percent over last year.',
  'Write a short reply thanking them for the update.',
  'The shipment left the warehouse on 2024-03-18 at 09:30.',
  'Version 2.14.1 fixed the crash reported last sprint.',
  'Order 48213 was refunded for $129.99 after the delay.',
  'Classify the sentiment of this customer message.',
  'Grace period for the invoice ends on the 30th.',
  'Will the new policy apply to contractors as well?',
  'The build hash was 9f2c1ab7 and the tests passed.',
  'Draft three bullet points for the release notes.',
];
const HARD_NEGATIVES = [
  () => 'Reference number 4111 1111 1111 1112 could not be matched.',
  () => 'Ticket 1234-5678-9012 is still open.',
  () => 'Our support line opens at 8:00 and closes at 17:30.',
  () => 'Upgrade from 10.4.3 to 10.4.12 before Friday.',
  () => 'The part number is AB-2231-XZ and costs 12.50 EUR.',
  () => 'ISBN 978-3-16-148410-0 is out of print.',
  () => 'Use the key named "staging" in the dashboard, not production.',
  () => 'Reset your password from the settings page.',
  () => 'April and May were the busiest months; June was quiet.',
  () => 'The report covers 2019 to 2023 across 14 regions.',
  () => 'Bill said the new price is fine.',
  () => 'Commit a3f5c9d2e8b1 adds the missing migration.',
  () => 'The grade average across the class was 3.4.',
  () => 'Run it at 127 requests per second for 60 seconds.',
  () => 'GB shipping takes 3-5 days; DE shipping 2-4 days.',
];

// ---- generators of each class (each returns the planted value) ----

function luhnCheckDigit(body: string): string {
  let sum = 0;
  for (let i = 0; i < body.length; i++) {
    let d = Number(body[body.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return String((10 - (sum % 10)) % 10);
}

function card(r: Rand): string {
  const kind = int(r, 0, 3);
  let n: string;
  if (kind === 0) n = `4${digits(r, 14)}`;
  else if (kind === 1) n = `5${int(r, 1, 5)}${digits(r, 13)}`;
  else if (kind === 2) n = `3${pick(r, ['4', '7'])}${digits(r, 12)}`;
  else n = `6011${digits(r, 11)}`;
  n += luhnCheckDigit(n);
  const style = int(r, 0, 2);
  if (style === 0) return n;
  const sep = style === 1 ? ' ' : '-';
  if (n.length === 15) return `${n.slice(0, 4)}${sep}${n.slice(4, 10)}${sep}${n.slice(10)}`;
  return n.replace(/(\d{4})(?=\d)/g, `$1${sep}`);
}

function mod97(s: string): number {
  let rem = 0;
  for (const ch of s) {
    const v = /[A-Z]/.test(ch) ? String(ch.charCodeAt(0) - 55) : ch;
    for (const d of v) rem = (rem * 10 + Number(d)) % 97;
  }
  return rem;
}

function iban(r: Rand): string {
  const country = pick(r, ['DE', 'GB', 'FR', 'NL', 'ES', 'IT']);
  let bban: string;
  if (country === 'DE') bban = digits(r, 18);
  else if (country === 'GB') bban = `${pick(r, ['NWBK', 'BARC', 'HBUK'])}${digits(r, 14)}`;
  else if (country === 'FR') bban = digits(r, 23);
  else if (country === 'NL') bban = `${pick(r, ['ABNA', 'RABO', 'INGB'])}${digits(r, 10)}`;
  else if (country === 'ES') bban = digits(r, 20);
  else bban = `X${digits(r, 10)}${digits(r, 12)}`;
  const check = 98 - mod97(`${bban}${country}00`);
  const compact = `${country}${String(check).padStart(2, '0')}${bban}`;
  return r() < 0.5 ? compact : compact.replace(/(.{4})(?=.)/g, '$1 ');
}

function ssn(r: Rand): string {
  let area = int(r, 1, 899);
  if (area === 666) area = 667;
  const a = String(area).padStart(3, '0');
  const g = String(int(r, 1, 99)).padStart(2, '0');
  const s = String(int(r, 1, 9999)).padStart(4, '0');
  return r() < 0.8 ? `${a}-${g}-${s}` : `${a} ${g} ${s}`;
}

function nino(r: Rand): string {
  const letters = 'ABCEGHJKLMNPRSTWXYZ';
  const pre = `${pick(r, [...letters])}${pick(r, [...'ABCEGHJKLMNPRSTWXYZ'])}`;
  const d = digits(r, 6);
  const suf = pick(r, ['A', 'B', 'C', 'D']);
  return r() < 0.5 ? `${pre}${d}${suf}` : `${pre} ${d.slice(0, 2)} ${d.slice(2, 4)} ${d.slice(4)} ${suf}`;
}

function dni(r: Rand): string {
  const n = int(r, 10_000_000, 99_999_999);
  return `${n}${'TRWAGMYFPDXBNJZSQVHLCKE'[n % 23]}`;
}

function govId(r: Rand): { text: string; lead: string } {
  const k = int(r, 0, 2);
  if (k === 0) return { text: ssn(r), lead: pick(r, ['SSN', 'social security number', 'SSN:', 'my social is']) };
  if (k === 1) return { text: nino(r), lead: pick(r, ['National Insurance number', 'NI number', 'NINO']) };
  return { text: dni(r), lead: pick(r, ['DNI', 'documento', 'DNI number']) };
}

function phone(r: Rand): string {
  const k = int(r, 0, 6);
  const area = `${int(r, 2, 9)}${digits(r, 2)}`;
  const ex = `${int(r, 2, 9)}${digits(r, 2)}`;
  const line = digits(r, 4);
  switch (k) {
    case 0:
      return `+1${area}${ex}${line}`;
    case 1:
      return `(${area}) ${ex}-${line}`;
    case 2:
      return `${area}-${ex}-${line}`;
    case 3:
      return `+1 ${area} ${ex} ${line}`;
    case 4:
      return `+44 20 ${digits(r, 4)} ${digits(r, 4)}`;
    case 5:
      return `020 ${digits(r, 4)} ${digits(r, 4)}`;
    default:
      return `+49 30 ${digits(r, 8)}`;
  }
}

function email(r: Rand): string {
  const f = pick(r, FIRST).toLowerCase().replace('ü', 'u');
  const l = pick(r, LAST).toLowerCase().replace('ü', 'u');
  const local = pick(r, [`${f}.${l}`, `${f}_${l}${int(r, 1, 99)}`, `${f[0]}${l}`, `${f}+news`, `${l}.${f}`]);
  return `${local}@${pick(r, DOMAINS)}`;
}

function ip(r: Rand): string {
  if (r() < 0.6) return `${int(r, 1, 223)}.${int(r, 0, 255)}.${int(r, 0, 255)}.${int(r, 1, 254)}`;
  const h = (): string => int(r, 0, 0xffff).toString(16);
  return r() < 0.5 ? `2001:db8:${h()}:${h()}:${h()}:${h()}:${h()}:${h()}` : `2001:db8:${h()}::${h()}`;
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function chars(r: Rand, alphabet: string, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(r() * alphabet.length)];
  return s;
}

function credential(r: Rand): { text: string; lead: string } {
  const k = int(r, 0, 5);
  if (k === 0) return { text: `sk-${chars(r, ALNUM, 40)}`, lead: 'use this key' };
  if (k === 1) return { text: `AKIA${chars(r, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 16)}`, lead: 'the access key id is' };
  if (k === 2) return { text: `ghp_${chars(r, ALNUM, 36)}`, lead: 'my token:' };
  if (k === 3) {
    const head = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
    const body = Buffer.from(JSON.stringify({ sub: String(int(r, 1000, 99999)), iat: 1700000000 + int(r, 0, 1e6) })).toString('base64url');
    return { text: `${head}.${body}.${chars(r, B64URL, 43)}`, lead: 'Authorization: Bearer' };
  }
  if (k === 4) return { text: `password=${chars(r, ALNUM + '!#%', int(r, 8, 16))}`, lead: 'login with' };
  const body = chars(r, ALNUM + '+/', 64);
  return { text: `-----BEGIN RSA PRIVATE KEY-----\n${body}\n${chars(r, ALNUM + '+/', 40)}==\n-----END RSA PRIVATE KEY-----`, lead: 'here is the key:' };
}

function address(r: Rand): string {
  const base = `${int(r, 1, 9999)} ${pick(r, STREETS)} ${pick(r, STREET_TYPES)}`;
  return r() < 0.5 ? base : `${base}, ${pick(r, CITIES)}`;
}

function personName(r: Rand): string {
  return r() < 0.8 ? `${pick(r, FIRST)} ${pick(r, LAST)}` : `${pick(r, ['Dr.', 'Mr.', 'Ms.', 'Mrs.'])} ${pick(r, LAST)}`;
}

function minor(r: Rand): string {
  const k = int(r, 0, 3);
  if (k === 0) return `${int(r, 3, 17)} years old`;
  if (k === 1) return `${int(r, 3, 17)}-year-old`;
  if (k === 2) return `in ${pick(r, ['1st', '2nd', '3rd', '4th', '5th', '6th', '7th', '8th', '9th'])} grade`;
  return `aged ${int(r, 3, 17)}`;
}

// ---- templates: each plants one value with the words a user would write around it ----

type Plant = (r: Rand) => { before: string; value: string; after: string; cls: CorpusClass };

const PLANTS: Plant[] = [
  (r) => ({ cls: 'email', before: pick(r, ['Contact me at ', 'Send it to ', 'My email is ', 'cc ']), value: email(r), after: pick(r, ['.', ' today.', ' please.']) }),
  (r) => ({ cls: 'phone', before: pick(r, ['Call me on ', 'My phone number is ', 'Reach the office at ', 'tel: ']), value: phone(r), after: pick(r, ['.', ' after 5pm.', ' any time.']) }),
  (r) => ({ cls: 'payment_card', before: pick(r, ['Charge my card ', 'Card number: ', 'The Visa ending in the number ', 'pay with ']), value: card(r), after: pick(r, ['.', ' exp 04/27.', ' thanks.']) }),
  (r) => {
    const g = govId(r);
    return { cls: 'gov_id', before: `${g.lead} `, value: g.text, after: pick(r, ['.', ' for the form.', ' (please keep it safe).']) };
  },
  (r) => ({ cls: 'iban', before: pick(r, ['Transfer to IBAN ', 'Wire the refund to ', 'Account: ']), value: iban(r), after: pick(r, ['.', ' by Monday.', ' thanks.']) }),
  (r) => ({ cls: 'ip_address', before: pick(r, ['The request came from ', 'Block IP ', 'Server address ', 'client ']), value: ip(r), after: pick(r, ['.', ' yesterday.', ' in the logs.']) }),
  (r) => {
    const c = credential(r);
    return { cls: 'credential', before: `${c.lead} `, value: c.text, after: pick(r, [' to connect.', '\n', ' and retry.']) };
  },
  (r) => ({ cls: 'street_address', before: pick(r, ['I live at ', 'Ship it to ', 'The office is at ', 'Deliver to ']), value: address(r), after: pick(r, ['.', ' before noon.', ' please.']) }),
  (r) => ({ cls: 'person_name', before: pick(r, ['My name is ', 'Dear ', 'Please forward this to ', 'This was approved by ']), value: personName(r), after: pick(r, ['.', ', thanks.', ' yesterday.']) }),
  (r) => ({ cls: 'health', before: pick(r, ['The patient was diagnosed with ', 'I am being treated for ', 'My doctor prescribed ', 'She has ']), value: pick(r, HEALTH), after: pick(r, ['.', ' last year.', ' and needs rest.']) }),
  (r) => ({ cls: 'minor', before: pick(r, ['My son is ', 'My daughter is ', 'The student is ', 'our kid, ']), value: minor(r), after: pick(r, ['.', ' and loves maths.', ', is that ok?']) }),
];

/** One document: 1-3 planted values among filler, or (25%) PII-free text with look-alikes. */
function document(r: Rand): CorpusDoc {
  let text = '';
  const labels: CorpusLabel[] = [];
  const add = (s: string): void => {
    text += (text === '' ? '' : ' ') + s;
  };
  if (r() < 0.25) {
    for (let i = int(r, 2, 4); i > 0; i--) add(r() < 0.5 ? pick(r, FILLER) : pick(r, HARD_NEGATIVES)());
    return { text, labels };
  }
  for (let i = int(r, 1, 3); i > 0; i--) {
    if (r() < 0.6) add(pick(r, FILLER));
    const p = pick(r, PLANTS)(r);
    add(p.before);
    const start = text.length;
    text += p.value;
    labels.push({ cls: p.cls, start, end: start + p.value.length });
    text += p.after;
  }
  if (r() < 0.5) add(pick(r, FILLER));
  return { text, labels };
}

/** The corpus: `count` documents from the frozen seed (the same documents every run). */
export function generatePiiCorpus(count: number, seed = PII_CORPUS_SEED): CorpusDoc[] {
  const r = mulberry32(seed);
  const docs: CorpusDoc[] = [];
  for (let i = 0; i < count; i++) docs.push(document(r));
  return docs;
}
