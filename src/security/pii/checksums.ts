// Check-digit algorithms the recognizers use to tell real identifiers from look-alikes.

/** Luhn (ISO/IEC 7812) over a string of digits: payment cards. */
export function luhnValid(digits: string): boolean {
  if (!/^\d{2,}$/.test(digits)) return false;
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** IBAN lengths by country (ISO 13616 registry, the common SEPA and nearby members). */
const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AT: 20, BE: 16, BG: 22, BH: 22, BR: 29, CH: 21, CY: 28, CZ: 24, DE: 22, DK: 18,
  EE: 20, ES: 24, FI: 18, FO: 18, FR: 27, GB: 22, GI: 23, GL: 18, GR: 27, HR: 21, HU: 28, IE: 22,
  IL: 23, IS: 26, IT: 27, KW: 30, KZ: 20, LB: 28, LI: 21, LT: 20, LU: 20, LV: 21, MC: 27, MT: 31,
  NL: 18, NO: 15, PL: 28, PT: 25, QA: 29, RO: 24, SA: 24, SE: 24, SI: 19, SK: 24, SM: 27, TR: 26,
  UA: 29,
};

/** ISO 13616 / ISO 7064 mod-97-10 with the registry length of its country. Spaces allowed. */
export function ibanValid(text: string): boolean {
  const s = text.replace(/ /g, '').toUpperCase();
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]+$/.test(s)) return false;
  if (IBAN_LENGTHS[s.slice(0, 2)] !== s.length) return false;
  const moved = s.slice(4) + s.slice(0, 4);
  let rem = 0;
  for (let i = 0; i < moved.length; i++) {
    const c = moved.charCodeAt(i);
    if (c >= 65) {
      const v = c - 55;
      rem = (rem * 100 + v) % 97;
    } else {
      rem = (rem * 10 + (c - 48)) % 97;
    }
  }
  return rem === 1;
}

/** Spanish DNI / NIE: 8 digits (NIE: X/Y/Z + 7) and the mod-23 check letter. */
export function spanishIdValid(text: string): boolean {
  const m = /^([XYZ]?)(\d{7,8})([A-Z])$/.exec(text.toUpperCase());
  if (m === null) return false;
  const prefix = m[1] === '' ? '' : String('XYZ'.indexOf(m[1] as string));
  const num = Number(prefix + (m[2] as string));
  if ((m[1] === '' && (m[2] as string).length !== 8) || (m[1] !== '' && (m[2] as string).length !== 7)) return false;
  return 'TRWAGMYFPDXBNJZSQVHLCKE'[num % 23] === m[3];
}

/** US SSN structure: area not 000, 666 or 9xx; group not 00; serial not 0000. */
export function ssnStructureValid(area: string, group: string, serial: string): boolean {
  return area !== '000' && area !== '666' && area[0] !== '9' && group !== '00' && serial !== '0000';
}

/** The registry length of a country's IBANs (undefined: not a known IBAN country). */
export function ibanLength(country: string): number | undefined {
  return IBAN_LENGTHS[country];
}
