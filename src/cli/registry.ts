import type { CliCommand } from './command.ts';
import { auditVerifyCommand } from './commands/audit-verify.ts';
import { benchCommand } from './commands/bench.ts';
import { configCheckCommand } from './commands/config-check.ts';
import { evidenceExportCommand, evidenceOpenCommand, evidenceVerifyCommand } from './commands/evidence.ts';
import { demoCommand } from './commands/demo.ts';
import { keysCreateCommand } from './commands/keys-create.ts';
import { keysListCommand } from './commands/keys-list.ts';
import { keysRevokeCommand } from './commands/keys-revoke.ts';
import { keysRotateCommand } from './commands/keys-rotate.ts';
import { keysSegmentCommand } from './commands/keys-segment.ts';
import { piiRevealCommand } from './commands/pii-reveal.ts';
import { rdmaDevicesCommand } from './commands/rdma-devices.ts';
import { serveCommand } from './commands/serve.ts';
import { trainingReleaseCommand } from './commands/training-release.ts';
import { tenantKeyDestroyCommand, tenantKeyListCommand, tenantKeyRotateCommand } from './commands/tenant-key.ts';
import { transfersListCommand } from './commands/transfers-list.ts';
import { transfersStatusCommand } from './commands/transfers-status.ts';
import { transfersWatchCommand } from './commands/transfers-watch.ts';

// Longest names first so "keys create" wins over a hypothetical "keys".
export const commands: readonly CliCommand[] = [
  auditVerifyCommand,
  benchCommand,
  configCheckCommand,
  demoCommand,
  evidenceExportCommand,
  evidenceVerifyCommand,
  evidenceOpenCommand,
  keysCreateCommand,
  keysListCommand,
  keysRotateCommand,
  keysRevokeCommand,
  keysSegmentCommand,
  piiRevealCommand,
  rdmaDevicesCommand,
  serveCommand,
  trainingReleaseCommand,
  tenantKeyRotateCommand,
  tenantKeyDestroyCommand,
  tenantKeyListCommand,
  transfersListCommand,
  transfersStatusCommand,
  transfersWatchCommand,
].sort(
  (a, b) => b.name.split(' ').length - a.name.split(' ').length,
);
