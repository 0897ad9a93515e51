// Argument checks of the Aead contract, shared by every implementation so they all accept and
// reject the same calls with the same messages. The native addon checks lengths and types again
// itself (a TypeError/RangeError with the same code), but not the overlap rule.
import { KEY_BYTES, NONCE_BYTES, TAG_BYTES } from './aead.ts';
import { CryptoError, CryptoErrorCode } from './errors.ts';

function argError(message: string): CryptoError {
  return new CryptoError(CryptoErrorCode.ARG, message);
}

function checkBytes(name: string, value: unknown): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw argError(`${name} must be a Uint8Array`);
}

// Output may alias an input only exactly in place (same start); any other overlap would read
// bytes already overwritten.
function checkOverlap(name: string, input: Uint8Array, out: Uint8Array, outPos: number): void {
  if (input.byteLength === 0 || out.byteLength === 0 || input.buffer !== out.buffer) return;
  const inStart = input.byteOffset;
  const outStart = out.byteOffset;
  if (inStart + input.byteLength <= outStart || outStart + out.byteLength <= inStart) return;
  if (inStart !== outStart + outPos) throw argError(`out must not partially overlap ${name}`);
}

export function checkKey(key: unknown): asserts key is Uint8Array {
  checkBytes('key', key);
  if (key.byteLength !== KEY_BYTES) throw argError(`key must be ${KEY_BYTES} bytes`);
}

function checkNonceAad(nonce: unknown, aad: unknown): void {
  checkBytes('nonce', nonce);
  if (nonce.byteLength !== NONCE_BYTES) throw argError(`nonce must be ${NONCE_BYTES} bytes`);
  checkBytes('aad', aad);
}

export function checkSealArgs(nonce: unknown, aad: unknown, plaintext: unknown, out: unknown): void {
  checkNonceAad(nonce, aad);
  checkBytes('plaintext', plaintext);
  checkBytes('out', out);
  if (out.byteLength !== plaintext.byteLength + TAG_BYTES) {
    throw argError(`out must be plaintext.byteLength + ${TAG_BYTES} bytes`);
  }
  checkOverlap('plaintext', plaintext, out, 0);
}

export function checkSealvArgs(nonce: unknown, aad: unknown, parts: unknown, out: unknown): void {
  checkNonceAad(nonce, aad);
  if (!Array.isArray(parts)) throw argError('parts must be an array of Uint8Array');
  let total = 0;
  for (let i = 0; i < parts.length; i++) {
    const part: unknown = parts[i];
    checkBytes(`parts[${i}]`, part);
    total += part.byteLength;
  }
  checkBytes('out', out);
  if (out.byteLength !== total + TAG_BYTES) {
    throw argError(`out must be the sum of parts' byteLength + ${TAG_BYTES} bytes`);
  }
  let pos = 0;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as Uint8Array;
    checkOverlap(`parts[${i}]`, part, out, pos);
    pos += part.byteLength;
  }
}

export function checkOpenArgs(nonce: unknown, aad: unknown, sealed: unknown, out: unknown): void {
  checkNonceAad(nonce, aad);
  checkBytes('sealed', sealed);
  if (sealed.byteLength < TAG_BYTES) throw argError(`sealed must be at least ${TAG_BYTES} bytes`);
  checkBytes('out', out);
  if (out.byteLength !== sealed.byteLength - TAG_BYTES) {
    throw argError(`out must be sealed.byteLength - ${TAG_BYTES} bytes`);
  }
  // In place means out starts where sealed starts; the tag after it is then never overwritten.
  checkOverlap('sealed', sealed, out, 0);
}
