// Runs a started node until SIGINT or SIGTERM, then stops it gracefully; a second signal exits
// at once.
import type { Logger } from '../telemetry/logger.ts';
import type { SluiceNode } from './sluice-node.ts';

export async function runUntilSignal(node: SluiceNode, logger: Logger, graceMs: number): Promise<number> {
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  logger.info({ signal, grace_ms: graceMs }, 'shutting down');
  const again = (): void => {
    logger.warn('second signal: exiting now');
    process.exit(130);
  };
  process.once('SIGINT', again);
  process.once('SIGTERM', again);
  await node.stop(graceMs);
  return 0;
}
