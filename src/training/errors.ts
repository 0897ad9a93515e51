// Errors of training transfers. `status` is the outcome class, named after the gRPC status the
// TensorTransfer service answers with, so the same value travels between peers and to clients.
import { SluiceError } from '../errors.ts';

export const TRANSFER_STATUSES = [
  'INVALID_ARGUMENT',
  'NOT_FOUND',
  'FAILED_PRECONDITION',
  'ALREADY_EXISTS',
  'UNAVAILABLE',
  'ABORTED',
  'DATA_LOSS',
  'RESOURCE_EXHAUSTED',
  'PERMISSION_DENIED',
  'CANCELLED',
  'INTERNAL',
  // Append only: the index is the status byte of the peer protocol's ERROR message.
  'UNAUTHENTICATED',
] as const;
export type TransferStatusCode = (typeof TRANSFER_STATUSES)[number];

const CODES: Record<TransferStatusCode, string> = {
  INVALID_ARGUMENT: 'SLUICE_ERR_TRANSFER_INVALID',
  NOT_FOUND: 'SLUICE_ERR_TRANSFER_NOT_FOUND',
  FAILED_PRECONDITION: 'SLUICE_ERR_TRANSFER_PRECONDITION',
  ALREADY_EXISTS: 'SLUICE_ERR_TRANSFER_EXISTS',
  UNAVAILABLE: 'SLUICE_ERR_TRANSFER_UNAVAILABLE',
  ABORTED: 'SLUICE_ERR_TRANSFER_ABORTED',
  DATA_LOSS: 'SLUICE_ERR_TRANSFER_DATA_LOSS',
  RESOURCE_EXHAUSTED: 'SLUICE_ERR_TRANSFER_EXHAUSTED',
  PERMISSION_DENIED: 'SLUICE_ERR_TRANSFER_DENIED',
  UNAUTHENTICATED: 'SLUICE_ERR_TRANSFER_UNAUTHENTICATED',
  CANCELLED: 'SLUICE_ERR_TRANSFER_CANCELLED',
  INTERNAL: 'SLUICE_ERR_TRANSFER_INTERNAL',
};

export class TransferError extends SluiceError {
  constructor(
    readonly status: TransferStatusCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(CODES[status], message, options);
  }
}

/** A peer sent bytes that do not follow the training peer protocol. */
export class PeerProtocolError extends SluiceError {
  constructor(message: string) {
    super('SLUICE_ERR_TRAINING_PROTOCOL', message);
  }
}
