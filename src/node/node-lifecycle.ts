// Runs a started node under the lifecycle manager: SIGTERM/SIGINT drain it (readiness off,
// stop accepting, finish in flight within the grace period, flush logs, close), a second signal
// exits at once, SIGHUP reloads the config file and applies what can change live.
import { Lifecycle } from '../cli/lifecycle.ts';
import { loadConfigFile } from '../config/load.ts';
import type { SluiceConfig } from '../config/schema.ts';
import { resolveLogLevel, type Logging } from '../telemetry/logger.ts';
import type { SluiceNode } from './sluice-node.ts';

export interface NodeLifecycleOptions {
  node: SluiceNode;
  logging: Logging;
  config: SluiceConfig;
  /** Re-read on SIGHUP; without it a reload is refused (the embedded demo config). */
  configFile?: string;
  /** Overrides config lifecycle.drainGraceMs (the --grace-ms flag). */
  graceMs?: number;
}

/** Installs the signal handlers; the process exits when the drain ends (0: clean). */
export function runNodeUntilStopped(o: NodeLifecycleOptions): Lifecycle {
  const { node, logging, config } = o;
  const lc = config.lifecycle;
  let graceMs = o.graceMs ?? lc.drainGraceMs;
  const lifecycle = new Lifecycle({
    graceMs,
    delayMs: lc.drainDelayMs,
    closeTimeoutMs: lc.closeTimeoutMs,
    logger: logging.component('lifecycle'),
    health: node.health,
    config,
    reloadStats: node.metrics.reloads,
    ...(o.configFile !== undefined ? { loadConfig: () => loadConfigFile(o.configFile!) } : {}),
    beforeImmediateExit: () => logging.flushSync(),
    exit: (code) => {
      logging.flushSync();
      process.exit(code);
    },
  });
  lifecycle.onDrain('stop-accepting', 'node', () => node.beginDrain(graceMs));
  lifecycle.onDrain('in-flight', 'requests', async (ctx) => {
    // Calls cut at the end of the grace make the drain unclean (exit 1), not a silent success.
    if (!(await node.waitIdle(ctx.signal))) throw new Error('calls were still in flight when the drain grace ended');
  });
  lifecycle.onDrain('flush', 'logs', () => logging.flush());
  lifecycle.onDrain('close', 'node', () => node.close());
  lifecycle.onReload('log-level', (next) => logging.setLevel(resolveLogLevel(next.log.level)));
  // Keys and signing keys are read again at once (they also apply within one poll interval).
  lifecycle.onReload('credentials', () => node.reloadCredentials());
  lifecycle.onReload('drain-timings', (next) => {
    if (o.graceMs === undefined) graceMs = next.lifecycle.drainGraceMs;
    lifecycle.setTimings({ graceMs, delayMs: next.lifecycle.drainDelayMs, closeTimeoutMs: next.lifecycle.closeTimeoutMs });
  });
  lifecycle.installSignalHandlers();
  return lifecycle;
}
