// Errors of encryption at rest, with stable codes.
import { CodedError } from '../../errors.ts';

export const AtRestErrorCode = {
  /** No usable key: unknown KEK, tenant key destroyed or missing. */
  KEY: 'SLUICE_ERR_AT_REST_KEY',
  /** Ciphertext or wrapped key failed authentication (tampered, or another tenant's key). */
  AUTH: 'SLUICE_ERR_AT_REST_AUTH',
  /** Not an encrypted blob of this format, or truncated. */
  FORMAT: 'SLUICE_ERR_AT_REST_FORMAT',
} as const;
export type AtRestErrorCode = (typeof AtRestErrorCode)[keyof typeof AtRestErrorCode];

export class AtRestError extends CodedError<AtRestErrorCode> {}
