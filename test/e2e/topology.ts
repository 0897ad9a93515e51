// The end-to-end topology, every part in its own process:
//   models  : the reference model server (sluice serve, `models` only)
//   egress  : inference segment listener; routes "*" to models, "ghost" to a dead port
//   ingress : HTTP + gRPC; routes "*" to egress, "orphan" to a peer nobody runs
//   small   : a second ingress with a 1 MiB request limit (oversize tests)
import { randomBytes } from 'node:crypto';
import { closedPort, type SluiceProcess, startSluice } from '../../scripts/sluice-child.ts';

export interface Topology {
  models: SluiceProcess;
  egress: SluiceProcess;
  ingress: SluiceProcess;
  small: SluiceProcess;
  http: string;
  grpc: string;
  smallHttp: string;
  smallGrpc: string;
  stop(): Promise<void>;
}

export const BIG_LIMIT = 80 * 1024 * 1024;
export const SMALL_LIMIT = 1024 * 1024;

export async function startTopology(): Promise<Topology> {
  const key = randomBytes(32).toString('hex');
  const dead = await closedPort();
  const nowhere = await closedPort();
  const models = await startSluice(
    { node: { name: 'models' }, models: { listen: { host: '127.0.0.1', port: 0 }, dense: { k: 16, n: 4, seed: 99 } } },
    { name: 'models' },
  );
  const egress = await startSluice(
    {
      node: { name: 'egress' },
      segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: 0 } } },
      routes: [
        { model: 'ghost', upstreams: [{ address: `127.0.0.1:${dead}` }] },
        { model: '*', upstreams: [{ address: models.endpoints.models! }] },
      ],
    },
    { name: 'egress' },
  );
  const [segHost, segPort] = egress.endpoints.segment!.split(':') as [string, string];
  const ingressConfig = (name: string, maxRequestBytes: number): object => ({
    node: { name },
    listeners: { http: { host: '127.0.0.1', port: 0 }, grpc: { host: '127.0.0.1', port: 0 } },
    segments: { inference: { transport: 'tcp', key } },
    peers: [
      { name: 'egress', segment: 'inference', host: segHost, port: Number(segPort) },
      { name: 'nowhere', segment: 'inference', host: '127.0.0.1', port: nowhere },
    ],
    routes: [
      { model: 'orphan', peers: ['nowhere'] },
      { model: '*', peers: ['egress'] },
    ],
    limits: { maxRequestBytes, defaultTimeoutMs: 10_000 },
  });
  const [ingress, small] = await Promise.all([
    startSluice(ingressConfig('ingress', BIG_LIMIT), { name: 'ingress' }),
    startSluice(ingressConfig('small', SMALL_LIMIT), { name: 'small' }),
  ]);
  return {
    models,
    egress,
    ingress,
    small,
    http: ingress.endpoints.http!,
    grpc: ingress.endpoints.grpc!,
    smallHttp: small.endpoints.http!,
    smallGrpc: small.endpoints.grpc!,
    async stop() {
      await Promise.all([ingress.stop(), small.stop()]);
      await egress.stop();
      await models.stop();
    },
  };
}
