import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFile } from '../../config/load.ts';
import { runNodeUntilStopped } from '../../node/node-lifecycle.ts';
import { SluiceNode } from '../../node/sluice-node.ts';
import { defaultTransports } from '../../node/transports.ts';
import { Logging, resolveLogLevel } from '../../telemetry/logger.ts';
import { UsageError, type CliCommand } from '../command.ts';

export const serveCommand: CliCommand = {
  name: 'serve',
  summary: 'run the topology of a config file (ingress, egress, reference models)',
  usage: 'sluice serve [--config FILE] [--grace-ms N]   (SIGTERM drains, SIGHUP reloads)',
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
    const grace = values['grace-ms'] === undefined ? undefined : Number(values['grace-ms']);
    if (grace !== undefined && (!Number.isInteger(grace) || grace < 0)) throw new UsageError('--grace-ms must be a non-negative integer');
    const config = loadConfigFile(file);
    const logging = new Logging({ level: resolveLogLevel(config.log.level), node: config.node.name });
    const logger = logging.component('node');
    const node = new SluiceNode({ config, logger, transports: defaultTransports, configDir: path.dirname(path.resolve(file)) });
    try {
      await node.start();
    } catch (err) {
      await node.stop(0).catch(() => undefined);
      await logging.flush();
      throw err;
    }
    logger.info({ endpoints: node.endpoints }, 'ready');
    runNodeUntilStopped({ node, logging, config, configFile: file, ...(grace !== undefined ? { graceMs: grace } : {}) });
    // The lifecycle manager ends the process when the drain is over.
    return new Promise<number>(() => {});
  },
};
