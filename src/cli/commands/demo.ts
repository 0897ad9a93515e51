import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { DEFAULT_DEMO_PORTS, demoConfig, type DemoPorts } from '../../node/demo-config.ts';
import { runNodeUntilStopped } from '../../node/node-lifecycle.ts';
import { SluiceNode } from '../../node/sluice-node.ts';
import { defaultTransports } from '../../node/transports.ts';
import { Logging, resolveLogLevel } from '../../telemetry/logger.ts';
import { UsageError, type CliCommand } from '../command.ts';

/** A port nobody listens on right now (for parts whose address another part must know first). */
async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function portOption(v: string | undefined, fallback: number, name: string): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--${name} must be a port number (0 = any free port)`);
  return n;
}

export function simpleCurl(httpAddress: string): string {
  const a = Array.from({ length: 16 }, (_, i) => i + 1);
  const b = Array.from({ length: 16 }, () => 1);
  const body = JSON.stringify({
    inputs: [
      { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: a },
      { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: b },
    ],
  });
  return `curl -s -X POST http://${httpAddress}/v2/models/simple/infer -H 'content-type: application/json' -d '${body}'`;
}

export const demoCommand: CliCommand = {
  name: 'demo',
  summary: 'run ingress + egress + reference models on loopback (no config file needed)',
  usage: 'sluice demo [--host H] [--http-port N] [--grpc-port N] [--segment-port N] [--models-port N] [--metrics-port N]',
  help() {
    const d = DEFAULT_DEMO_PORTS;
    return [
      'options (0 = any free port; the start-up lines print the ports in use):',
      `  --host H            address every part listens on (default ${d.host})`,
      `  --http-port N       KServe v2 REST and WebSocket ingress (default ${d.http})`,
      `  --grpc-port N       KServe v2 / Triton gRPC ingress and grpc.health.v1 (default ${d.grpc})`,
      `  --segment-port N    inference segment listener of the egress (default ${d.segment})`,
      `  --models-port N     reference model server (default ${d.models})`,
      `  --metrics-port N    Prometheus /metrics and health (default ${d.metrics})`,
    ].join('\n');
  },
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        host: { type: 'string' },
        'http-port': { type: 'string' },
        'grpc-port': { type: 'string' },
        'segment-port': { type: 'string' },
        'models-port': { type: 'string' },
        'metrics-port': { type: 'string' },
      },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const host = values.host ?? DEFAULT_DEMO_PORTS.host;
    const ports: DemoPorts = {
      host,
      http: portOption(values['http-port'], DEFAULT_DEMO_PORTS.http, 'http-port'),
      grpc: portOption(values['grpc-port'], DEFAULT_DEMO_PORTS.grpc, 'grpc-port'),
      segment: portOption(values['segment-port'], DEFAULT_DEMO_PORTS.segment, 'segment-port'),
      models: portOption(values['models-port'], DEFAULT_DEMO_PORTS.models, 'models-port'),
      metrics: portOption(values['metrics-port'], DEFAULT_DEMO_PORTS.metrics, 'metrics-port'),
    };
    // The ingress dials the segment port and the egress dials the models port, so both must be
    // known before start: "0" picks a free one now.
    if (ports.segment === 0) ports.segment = await freePort(host);
    if (ports.models === 0) ports.models = await freePort(host);
    // A fresh segment key per run: the demo's two halves share it in memory only.
    const config = demoConfig(ports, randomBytes(32).toString('hex'));
    const logging = new Logging({ level: resolveLogLevel(config.log.level), node: config.node.name });
    const logger = logging.component('node');
    const node = new SluiceNode({ config, logger, transports: defaultTransports });
    try {
      await node.start();
    } catch (err) {
      await node.stop(0).catch(() => undefined);
      throw err;
    }
    const e = node.endpoints;
    process.stdout.write(
      [
        'sluice demo: ingress + egress + reference models on loopback',
        `  HTTP/REST + WebSocket  http://${e.http}   (KServe v2; ws://${e.http}/v2/models/{model}/infer/stream)`,
        `  gRPC                   ${e.grpc}   (inference.GRPCInferenceService; ${node.grpcOnEngine ? 'native engine: ModelInfer/ModelStreamInfer in C++' : 'TypeScript ingress'})`,
        `  egress                 ${node.egressOnEngine ? 'native engine' : 'TypeScript'}`,
        `  inference segment      ${e.segment}   (tcp, AES-256-GCM, key generated for this run)`,
        `  model server           ${e.models}   (models: simple, identity, dense)`,
        `  metrics and probes     http://${e.metrics}/metrics   (/livez, /readyz, /health)`,
        '',
        'Try it:',
        `  ${simpleCurl(e.http!)}`,
        '',
        'Ctrl-C stops.',
        '',
      ].join('\n'),
    );
    runNodeUntilStopped({ node, logging, config, graceMs: 2000 });
    return new Promise<number>(() => {});
  },
};
