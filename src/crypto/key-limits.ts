// How much one AES-256-GCM key may protect before a link moves to the next key.
//
// Nonces are deterministic (direction id + counter), so the 2^32-invocation cap that NIST
// SP 800-38D sets for random nonces does not bind; what binds is the confidentiality and
// integrity advantage, which grows with the square of the blocks processed under one key
// (draft-irtf-cfrg-aead-limits: advantage about (total blocks)^2 / 2^129 for AES-GCM).
//   - 2^36 bytes (64 GiB) = 2^32 16-byte blocks per key keeps that advantage near 2^-65,
//     below the 2^-57 the draft recommends, with room for the headers (also counted).
//   - 2^32 frames per key bounds the number of invocations the same way (and TLS 1.3 rekeys
//     after 2^24.5 records of 16 KiB, i.e. a similar byte volume).
// A rekey costs two HKDF calls and a new cipher context, so rekeying early is cheap: the
// numbers are far from anything that matters for speed. Tests lower them to exercise rekey.
export interface KeyLimits {
  /** Frames sealed under one key before the next key is used. */
  maxFramesPerKey: number;
  /** Bytes (header + payload) authenticated under one key before the next key is used. */
  maxBytesPerKey: number;
}

export const DEFAULT_KEY_LIMITS: Readonly<KeyLimits> = Object.freeze({
  maxFramesPerKey: 2 ** 32,
  maxBytesPerKey: 2 ** 36,
});

/** A REKEY frame itself is sealed under the old key: the limits must leave room for one. */
export function checkKeyLimits(limits: KeyLimits): KeyLimits {
  if (!Number.isSafeInteger(limits.maxFramesPerKey) || limits.maxFramesPerKey < 2 || limits.maxFramesPerKey > DEFAULT_KEY_LIMITS.maxFramesPerKey) {
    throw new RangeError(`maxFramesPerKey must be an integer in [2, 2^32], got ${limits.maxFramesPerKey}`);
  }
  if (!Number.isSafeInteger(limits.maxBytesPerKey) || limits.maxBytesPerKey < 4096 || limits.maxBytesPerKey > DEFAULT_KEY_LIMITS.maxBytesPerKey) {
    throw new RangeError(`maxBytesPerKey must be an integer in [4096, 2^36], got ${limits.maxBytesPerKey}`);
  }
  return limits;
}
