// Each class family's recognizer on real-looking text and its look-alikes, context scoring,
// and the tokenizer (strict and reversible) under fast-check on untrusted input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ibanValid, luhnValid, spanishIdValid } from '../../../src/security/pii/checksums.ts';
import { PII_CLASSES, type PiiClass } from '../../../src/security/pii/classes.ts';
import { replaceMatches, restoreTokens, strictToken } from '../../../src/security/pii/redact.ts';
import { scanText } from '../../../src/security/pii/scanner.ts';

function classesIn(text: string, minConfidence = 0.5): PiiClass[] {
  return scanText(text, { minConfidence }).map((m) => m.cls);
}

function found(text: string, cls: PiiClass, value: string): boolean {
  const at = text.indexOf(value);
  return scanText(text).some((m) => m.cls === cls && m.start <= at && m.end >= at + value.length);
}

test('checksums: Luhn, IBAN mod-97 with country length, DNI check letter', () => {
  assert.equal(luhnValid('4111111111111111'), true);
  assert.equal(luhnValid('4111111111111112'), false);
  assert.equal(ibanValid('DE89 3704 0044 0532 0130 00'), true);
  assert.equal(ibanValid('DE89 3704 0044 0532 0130 01'), false);
  assert.equal(ibanValid('GB82WEST12345698765432'), true);
  assert.equal(ibanValid('GB82WEST1234569876543'), false, 'wrong length for GB');
  assert.equal(spanishIdValid('12345678Z'), true);
  assert.equal(spanishIdValid('12345678A'), false);
});

test('payment cards: Luhn-valid numbers in any common layout; Luhn failures and ISBNs are not cards', () => {
  for (const v of ['4111 1111 1111 1111', '5500-0000-0000-0004', '378282246310005', '6011111111111117']) {
    assert.ok(found(`Charge my card ${v} please`, 'payment_card', v), v);
  }
  assert.deepEqual(classesIn('Reference number 4111 1111 1111 1112 could not be matched.'), []);
  assert.ok(!classesIn('ISBN 978-3-16-148410-0 is out of print.').includes('payment_card'));
});

test('IBAN, government ids: checksum or structure, and context words', () => {
  assert.ok(found('Wire it to DE89 3704 0044 0532 0130 00 today', 'iban', 'DE89 3704 0044 0532 0130 00'));
  assert.ok(!found('Wire it to DE89 3704 0044 0532 0130 01 today', 'iban', 'DE89 3704 0044 0532 0130 01'));
  assert.ok(found('SSN 123-45-6789 on file', 'gov_id', '123-45-6789'));
  assert.ok(!found('SSN 666-45-6789 on file', 'gov_id', '666-45-6789'), 'area 666 is never issued');
  // Context raises a spaced SSN over the floor; without it it stays below.
  const ctx = scanText('my social security number is 123 45 6789', { minConfidence: 0 }).find((m) => m.cls === 'gov_id')!;
  const bare = scanText('the numbers were 123 45 6789', { minConfidence: 0 }).find((m) => m.cls === 'gov_id')!;
  assert.ok(ctx.score > bare.score && ctx.score >= 0.5 && bare.score < 0.5, `${ctx.score} vs ${bare.score}`);
  assert.ok(found('NINO AB 12 34 56 C', 'gov_id', 'AB 12 34 56 C'));
  assert.ok(found('DNI 12345678Z', 'gov_id', '12345678Z'));
});

test('phones (E.164 and national), emails, IPv4 and IPv6', () => {
  for (const v of ['+14155552671', '+44 20 7946 0958', '(415) 555-2671', '415-555-2671']) assert.ok(found(`Call me on ${v} tomorrow`, 'phone', v), v);
  assert.ok(found('tel: 020 7946 0958', 'phone', '020 7946 0958'));
  assert.ok(found('mail jane.doe+x@mail.example.org now', 'email', 'jane.doe+x@mail.example.org'));
  assert.ok(found('request from 192.168.10.4 failed', 'ip_address', '192.168.10.4'));
  assert.ok(found('client 2001:db8::8a2e:370:7334 failed', 'ip_address', '2001:db8::8a2e:370:7334'));
  assert.ok(!classesIn('upgrade from 10.4.3 to 10.4.12 at 09:30').includes('ip_address'));
  assert.ok(!classesIn('version 1.2.3.4 is out').includes('ip_address'), 'a version string is lowered by negative context');
});

test('credentials: API keys, JWTs, password= forms (the value only) and private-key blocks', () => {
  const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';
  assert.ok(found(`Bearer ${jwt}`, 'credential', jwt));
  assert.ok(found('key sk-abcdefghijklmnopqrstuvwxyz0123', 'credential', 'sk-abcdefghijklmnopqrstuvwxyz0123'));
  assert.ok(found('id AKIAIOSFODNN7EXAMPLE', 'credential', 'AKIAIOSFODNN7EXAMPLE'));
  const pw = scanText('login with password=hunter2!x then').find((m) => m.cls === 'credential')!;
  assert.equal('login with password=hunter2!x then'.slice(pw.start, pw.end), 'hunter2!x');
  const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----';
  assert.ok(found(`here: ${pem}`, 'credential', pem));
  assert.ok(!classesIn('Reset your password from the settings page.').includes('credential'));
});

test('addresses, names, health terms and minors: lexicons and context', () => {
  assert.ok(found('I live at 742 Evergreen Terrace, Springfield, IL 62704 now', 'street_address', '742 Evergreen Terrace'));
  assert.ok(found('Please forward this to Maria Garcia today', 'person_name', 'Maria Garcia'));
  assert.ok(found('Signed, Dr. Okonkwo', 'person_name', 'Dr. Okonkwo'));
  assert.ok(!classesIn('Will the new policy apply to contractors?').includes('person_name'), 'an ambiguous given name alone is not a name');
  assert.ok(found('She was diagnosed with type 2 diabetes last year', 'health', 'type 2 diabetes'));
  assert.ok(found('My son is 12 years old', 'minor', '12 years old'));
  assert.ok(found('my daughter is in 5th grade', 'minor', 'in 5th grade'));
  assert.ok(!classesIn('The CEO is 45 years old').includes('minor'), 'adults are not minors');
});

test('class filter and confidence floor', () => {
  const text = 'x bob@example.com y +14155552671';
  assert.deepEqual(scanText(text, { classes: new Set(['email']) }).map((m) => m.cls), ['email']);
  assert.deepEqual(scanText(text, { minConfidence: 0.95 }), []);
});

// ---- property tests: untrusted input ----

const textArb = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.string({ unit: 'grapheme', maxLength: 200 }),
  fc.array(fc.constantFrom('bob@example.com', '4111 1111 1111 1111', ' ', 'Call ', '+1', '(415) 555-2671', 'DE89370400440532013000', '[EMAIL:0123456789abcdef]', 'password=', '-----BEGIN PRIVATE KEY-----', '192.168.', '::', 'Maria ', 'Garcia', '12 years old', 'a', '\n', '.', '-'), { maxLength: 40 }).map((xs) => xs.join('')),
);

test('property: scanning never throws; matches are in bounds, sorted, non-overlapping, scored in [floor, 1]', () => {
  fc.assert(
    fc.property(textArb, fc.double({ min: 0, max: 1, noNaN: true }), (text, floor) => {
      const ms = scanText(text, { minConfidence: floor });
      let prevEnd = 0;
      for (const m of ms) {
        assert.ok(m.start >= prevEnd && m.end > m.start && m.end <= text.length);
        assert.ok(m.score >= Math.round(floor * 100) / 100 - 0.005 && m.score <= 1);
        assert.ok(PII_CLASSES.includes(m.cls));
        prevEnd = m.end;
      }
    }),
    { numRuns: 400 },
  );
});

test('property: strict tokenization removes every matched value and keeps the text between matches', () => {
  fc.assert(
    fc.property(textArb, (text) => {
      const ms = scanText(text);
      const out = replaceMatches(text, ms, (m) => strictToken(m.cls));
      let rest = out;
      for (const m of ms) {
        const tok = strictToken(m.cls);
        const i = rest.indexOf(tok);
        assert.ok(i >= 0);
        rest = rest.slice(i + tok.length);
      }
      // Re-assembling the gaps gives back the non-matched text, in order.
      const gaps = ms.length === 0 ? [text] : [text.slice(0, ms[0]!.start), ...ms.map((m, i) => text.slice(m.end, ms[i + 1]?.start ?? text.length))];
      assert.equal(out.split(/\[[A-Z_]+\]/).join(''), gaps.join('').split(/\[[A-Z_]+\]/).join(''));
    }),
    { numRuns: 300 },
  );
});

test('property: reversible tokens restore to the exact original text', () => {
  fc.assert(
    fc.property(textArb, (text) => {
      const ms = scanText(text);
      const store = new Map<string, string>();
      let n = 0;
      const tokenized = replaceMatches(text, ms, (m, value) => {
        const tok = `[${m.cls.toUpperCase()}:${(n++).toString(16).padStart(16, '0')}]`;
        store.set(tok, value);
        return tok;
      });
      const back = restoreTokens(tokenized, (tok) => store.get(tok));
      assert.equal(back?.text ?? tokenized, text.includes('[') && ms.length === 0 ? tokenized : back === undefined ? tokenized : back.text);
      if (ms.length > 0) assert.equal(back?.text, text);
    }),
    { numRuns: 300 },
  );
});
