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
  metrics: number;
}

export const DEFAULT_DEMO_PORTS: DemoPorts = { host: '127.0.0.1', http: 8000, grpc: 8001, segment: 7470, models: 8100, metrics: 8002 };

/** The demo config; `segmentKeyHex` is the inference segment key (the demo makes one per run). */
export function demoConfig(ports: DemoPorts, segmentKeyHex: string): SluiceConfig {
  const segmentPort = ports.segment;
  return parseConfig(
    {
      node: { name: 'sluice-demo' },
      listeners: { http: { host: ports.host, port: ports.http }, grpc: { host: ports.host, port: ports.grpc }, metrics: { host: ports.host, port: ports.metrics } },
      segments: { inference: { transport: 'tcp', key: segmentKeyHex, listen: { host: ports.host, port: segmentPort } } },
      peers: [{ name: 'local-egress', segment: 'inference', host: ports.host, port: segmentPort }],
      routes: [{ model: '*', peers: ['local-egress'], upstreams: [{ address: `${ports.host}:${ports.models}` }] }],
      models: { listen: { host: ports.host, port: ports.models } },
      log: { level: 'warn' },
    },
    'embedded demo config',
  );
}
