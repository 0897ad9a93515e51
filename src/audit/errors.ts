import { SluiceError } from '../errors.ts';

/** The file on disk is not a valid audit log (names the first bad entry). */
export class AuditCorruptError extends SluiceError {
  constructor(message: string) {
    super('SLUICE_ERR_AUDIT_CORRUPT', message);
  }
}

/** A write or fsync failed: the log stops accepting entries (fail closed). */
export class AuditWriteError extends SluiceError {
  constructor(message: string, cause?: unknown) {
    super('SLUICE_ERR_AUDIT_WRITE', message, { cause });
  }
}

/** Another live process holds the log open for writing. */
export class AuditLockedError extends SluiceError {
  constructor(message: string) {
    super('SLUICE_ERR_AUDIT_LOCKED', message);
  }
}

export class AuditClosedError extends SluiceError {
  constructor() {
    super('SLUICE_ERR_AUDIT_CLOSED', 'audit log is closed');
  }
}
