import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFile } from '../../config/load.ts';
import { runUntilSignal } from '../../node/run-until-signal.ts';
import { SluiceNode } from '../../node/sluice-node.ts';
import { defaultTransports } from '../../node/transports.ts';
import { createLogger } from '../../telemetry/logger.ts';
import { UsageError, type CliCommand } from '../command.ts';

export const serveCommand: CliCommand = {
  name: 'serve',
  summary: 'run the topology of a config file (ingress, egress, reference models)',
  usage: 'sluice serve [--config FILE] [--grace-ms N]',
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { config: { type: 'string', short: 'c' }, 'grace-ms': { type: 'string' } },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const file = values.config ?? process.env.SLUICE_CONFIG;
    if (file === undefined || file === '') {
      throw new ConfigError('no config: pass --config FILE or set SLUICE_CONFIG (or run "sluice demo" for the embedded one)');
    }
    const grace = values['grace-ms'] === undefined ? 5000 : Number(values['grace-ms']);
    if (!Number.isInteger(grace) || grace < 0) throw new UsageError('--grace-ms must be a non-negative integer');
    const config = loadConfigFile(file);
    const logger = createLogger(config.log.level, config.node.name);
    const node = new SluiceNode({ config, logger, transports: defaultTransports, configDir: path.dirname(path.resolve(file)) });
    try {
      await node.start();
    } catch (err) {
      await node.stop(0).catch(() => undefined);
      throw err;
    }
    logger.info({ endpoints: node.endpoints }, 'ready');
    return runUntilSignal(node, logger, grace);
  },
};
