// The sluice pair the inference benches measure: an egress node in front of the model server
// and an ingress node (gRPC listener) linked to it over a TCP inference segment on loopback.
import { startSluice, type SluiceProcess } from '../scripts/sluice-child.ts';

type ChildOptions = Omit<NonNullable<Parameters<typeof startSluice>[1]>, 'name'>;

export interface SluicePair {
  egress: SluiceProcess;
  ingress: SluiceProcess;
}

/**
 * Starts the egress, then the ingress dialling it. `prefix` names the nodes (`<prefix>-egress`,
 * `<prefix>-ingress`); `child` adds per-role child options (node flags, line hooks). Every
 * started process is pushed to `procs` at once, so the caller's cleanup stops it on any failure.
 * `config` adds top-level config sections per role (e.g. `telemetry`), over the ones here.
 */
export async function startSluicePair(
  modelsAddress: string,
  key: string,
  prefix: string,
  procs: SluiceProcess[],
  child: (role: 'ingress' | 'egress') => ChildOptions = () => ({}),
  config: (role: 'ingress' | 'egress') => Record<string, unknown> = () => ({}),
): Promise<SluicePair> {
  const egress = await startSluice(
    {
      node: { name: `${prefix}-egress` },
      segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: 0 } } },
      routes: [{ model: '*', upstreams: [{ address: modelsAddress }] }],
      log: { level: 'warn' },
      ...config('egress'),
    },
    { name: 'egress', ...child('egress') },
  );
  procs.push(egress);
  const [segHost, segPort] = egress.endpoints.segment!.split(':') as [string, string];
  const ingress = await startSluice(
    {
      node: { name: `${prefix}-ingress` },
      listeners: { grpc: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key } },
      peers: [{ name: 'egress', segment: 'inference', host: segHost, port: Number(segPort) }],
      routes: [{ model: '*', peers: ['egress'] }],
      log: { level: 'warn' },
      ...config('ingress'),
    },
    { name: 'ingress', ...child('ingress') },
  );
  procs.push(ingress);
  return { egress, ingress };
}
