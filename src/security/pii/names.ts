// Person names from a small lexicon of given names plus the capitalised word after them, or a
// title ("Dr.", "Ms") before a capitalised word. No statistical model: recall on names
// outside the lexicon is low, and is reported as such.
import type { Candidate, Recognizer } from './recognizers.ts';
import { AMBIGUOUS_FIRST_NAMES, FIRST_NAMES, NAME_TITLES } from './lexicons.ts';

const CAPITALISED = /\p{Lu}[\p{Ll}'’-]*\p{Ll}/uy;
const WORD = /(?<![\p{L}\d_])\p{Lu}\p{Ll}+(?:['’-]\p{Lu}?\p{Ll}+)?(?![\p{L}\d_])/gu;
const TITLE = new RegExp(`(?<![\\p{L}])(?:${NAME_TITLES.map((t) => t[0]!.toUpperCase() + t.slice(1)).join('|')})\\.? (\\p{Lu}[\\p{L}'’-]+)(?: (\\p{Lu}[\\p{L}'’-]+))?`, 'gu');

/** The capitalised word starting exactly at `pos` after one space, or null. */
function nextCapitalised(text: string, pos: number): { start: number; end: number } | null {
  if (text[pos] !== ' ') return null;
  CAPITALISED.lastIndex = pos + 1;
  const m = CAPITALISED.exec(text);
  if (m === null) return null;
  const end = pos + 1 + m[0].length;
  // "John Smithson" yes, "John Smith2" no.
  if (end < text.length && /[\p{L}\d_]/u.test(text[end] as string)) return null;
  return { start: pos + 1, end };
}

function* findNames(text: string): Iterable<Candidate> {
  for (const m of text.matchAll(TITLE)) {
    yield { start: m.index, end: m.index + m[0].length, score: 0.7 };
  }
  for (const m of text.matchAll(WORD)) {
    const lower = m[0].toLowerCase();
    if (!FIRST_NAMES.has(lower)) continue;
    const ambiguous = AMBIGUOUS_FIRST_NAMES.has(lower);
    const surname = nextCapitalised(text, m.index + m[0].length);
    if (surname !== null && !FIRST_NAMES.has(text.slice(surname.start, surname.end).toLowerCase())) {
      yield { start: m.index, end: surname.end, score: ambiguous ? 0.5 : 0.65 };
    } else if (surname !== null) {
      // Two given names in a row ("Maria Jose"): still a name, less sure which word ends it.
      yield { start: m.index, end: surname.end, score: 0.5 };
    } else {
      yield { start: m.index, end: m.index + m[0].length, score: ambiguous ? 0.1 : 0.35 };
    }
  }
}

export const personNameRecognizer: Recognizer = {
  name: 'person_name_lexicon',
  cls: 'person_name',
  find: findNames,
  context: ['name is', 'dear', 'hi ', 'hello', 'signed', 'regards', 'approved by', 'forward', 'mr', 'mrs', 'ms', 'patient', 'call me', 'i am', "i'm"],
};
