import type { CliCommand } from './command.ts';
import { configCheckCommand } from './commands/config-check.ts';
import { demoCommand } from './commands/demo.ts';
import { serveCommand } from './commands/serve.ts';

// Longest names first so "keys create" wins over a hypothetical "keys".
export const commands: readonly CliCommand[] = [configCheckCommand, demoCommand, serveCommand].sort(
  (a, b) => b.name.split(' ').length - a.name.split(' ').length,
);
