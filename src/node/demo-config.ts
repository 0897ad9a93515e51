// The embedded default topology of `sluice demo` / `npm start`: ingress, egress and the
// reference models in one process on loopback, the inference segment crossing loopback TCP.
import { parseConfig } from '../config/load.ts';
import type { SluiceConfig } from '../config/schema.ts';

export interface DemoPorts {
  host: string;
  http: number;
  grpc: number;
  segment: number;
  models: number;
}

export const DEFAULT_DEMO_PORTS: DemoPorts = { host: '127.0.0.1', http: 8000, grpc: 8001, segment: 7470, models: 8100 };

/** The demo config; `segmentPort` is where the egress listens (the ingress dials it). */
export function demoConfig(ports: DemoPorts, segmentPort = ports.segment): SluiceConfig {
  return parseConfig(
    {
      node: { name: 'sluice-demo' },
      listeners: { http: { host: ports.host, port: ports.http }, grpc: { host: ports.host, port: ports.grpc } },
      segments: { inference: { transport: 'tcp', listen: { host: ports.host, port: segmentPort } } },
      peers: [{ name: 'local-egress', segment: 'inference', host: ports.host, port: segmentPort }],
      routes: [{ model: '*', peers: ['local-egress'], upstreams: [{ address: `${ports.host}:${ports.models}` }] }],
      models: { listen: { host: ports.host, port: ports.models } },
      log: { level: 'warn' },
    },
    'embedded demo config',
  );
}
