// Every error sluice raises on purpose carries a stable `code` (string) that survives
// duplicate package copies and can be matched by callers, logs and metrics.
export class SluiceError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * A SluiceError whose code is one of a layer's stable codes: each layer declares its codes as a
 * const object and its error as `class WireError extends CodedError<WireErrorCode> {}`.
 */
export class CodedError<C extends string> extends SluiceError {
  declare readonly code: C;
  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export function isSluiceError(err: unknown, code?: string): err is SluiceError {
  return (
    typeof err === 'object' &&
    err !== null &&
    typeof (err as { code?: unknown }).code === 'string' &&
    err instanceof Error &&
    (code === undefined || (err as SluiceError).code === code)
  );
}
