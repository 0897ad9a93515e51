import type { CliCommand } from './command.ts';
import { auditVerifyCommand } from './commands/audit-verify.ts';
import { configCheckCommand } from './commands/config-check.ts';

// Longest names first so "keys create" wins over a hypothetical "keys".
export const commands: readonly CliCommand[] = [auditVerifyCommand, configCheckCommand].sort(
  (a, b) => b.name.split(' ').length - a.name.split(' ').length,
);
