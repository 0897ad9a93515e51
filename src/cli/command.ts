// A CLI sub-command. Each lives in its own file under src/cli/commands and is listed in registry.ts.
export interface CliCommand {
  /** First word(s) after `sluice`, e.g. "serve" or "config check". */
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  /** More for `--help` after the usage line and summary: options, examples. */
  help?(): string | Promise<string>;
  /** Returns the process exit code. Throw a SluiceError for a clear one-line failure. */
  run(args: string[]): Promise<number>;
}

export class UsageError extends Error {
  readonly code = 'SLUICE_ERR_USAGE';
}
