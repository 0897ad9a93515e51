// The chain most end-to-end tests start: a models server, an egress node serving it over a TCP
// inference segment (loopback, a free port), and an ingress node routing every model to that
// egress. Tests add their listeners, telemetry or security to either node's config.
import { randomBytes } from 'node:crypto';
import { parseConfig } from '../../src/config/load.ts';
import type { EngineIngress } from '../../src/engine/engine-ingress.ts';
import type { NativeEngine } from '../../src/engine/native-engine.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import type { KserveClient } from './kserve-client.ts';
import { closedPort } from './sluice-process.ts';

export interface NodeChain {
  models: SluiceNode;
  egress: SluiceNode;
  ingress: SluiceNode;
  /** Stops the ingress, then the egress, then the models server. */
  stop(): Promise<void>;
}

export interface NodeChainOptions {
  /** The log's node name (the logs are silent). */
  name: string;
  /** Config keys of the ingress besides its segment, peer and route (listeners, telemetry, security). */
  ingress?: Record<string, unknown>;
  /** Config keys of the egress besides its segment and route (security). */
  egress?: Record<string, unknown>;
}

export async function startNodeChain(o: NodeChainOptions): Promise<NodeChain> {
  const logging = new Logging({ level: 'silent', node: o.name });
  const key = randomBytes(32).toString('hex');
  const seg = await closedPort();
  const started: SluiceNode[] = [];
  const stop = async (): Promise<void> => {
    for (const n of started.reverse()) await n.stop(0);
  };
  const start = async (config: Record<string, unknown>, component: string): Promise<SluiceNode> => {
    const node = new SluiceNode({ config: parseConfig({ log: { level: 'silent' }, ...config }), logger: logging.component(component), transports: defaultTransports });
    await node.start();
    started.push(node);
    return node;
  };
  try {
    const models = await start({ models: { listen: { host: '127.0.0.1', port: 0 } } }, 'm');
    const egress = await start(
      {
        segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: seg } } },
        routes: [{ model: '*', upstreams: [{ address: models.endpoints.models! }] }],
        ...o.egress,
      },
      'e',
    );
    const ingress = await start(
      {
        segments: { inference: { transport: 'tcp', key } },
        peers: [{ name: 'egress', segment: 'inference', host: '127.0.0.1', port: seg }],
        routes: [{ model: '*', peers: ['egress'] }],
        ...o.ingress,
      },
      'i',
    );
    return { models, egress, ingress, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The native engine behind a node's gRPC ingress (private to the node: tests count its events). */
export function ingressEngine(node: SluiceNode): NativeEngine {
  return (node as unknown as { engineIngress: EngineIngress }).engineIngress.engine;
}

/** Calls until one is answered: the segment link comes up in the background, so the first calls may be UNAVAILABLE. */
export async function inferWhenLinked(kc: KserveClient, request: object, metadata?: Record<string, string>, attempts = 50): Promise<void> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      await kc.infer(request, { metadata });
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`no call answered in ${attempts} attempts: ${(last as { details?: string }).details ?? String(last)}`);
}
