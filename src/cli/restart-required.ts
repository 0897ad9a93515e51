// Which configuration changes a SIGHUP reload cannot apply to a running process: bound sockets,
// chosen transports and devices, segment keys (links are keyed at handshake), the topology
// (peers, routes, models) and limits. The reload keeps the running values and warns about these;
// what it does apply is listed in docs/operations.md ("Reload").
import { isDeepStrictEqual } from 'node:util';
import type { SluiceConfig } from '../config/schema.ts';

export function restartRequiredChanges(previous: SluiceConfig, next: SluiceConfig): string[] {
  const out: string[] = [];
  const cmp = (path: string, a: unknown, b: unknown): void => {
    if (!isDeepStrictEqual(a, b)) out.push(path);
  };
  cmp('node.name', previous.node.name, next.node.name);
  for (const l of ['http', 'grpc', 'metrics', 'training'] as const) cmp(`listeners.${l}`, previous.listeners[l], next.listeners[l]);
  for (const s of ['inference', 'training'] as const) {
    const a = previous.segments[s];
    const b = next.segments[s];
    if ((a === undefined) !== (b === undefined)) {
      out.push(`segments.${s}`);
      continue;
    }
    cmp(`segments.${s}.transport`, a?.transport, b?.transport);
    cmp(`segments.${s}.listen`, a?.listen, b?.listen);
    cmp(`segments.${s}.device`, a?.device, b?.device);
    cmp(`segments.${s}.key`, a?.key, b?.key);
    cmp(`segments.${s}.keyFile`, a?.keyFile, b?.keyFile);
    cmp(`segments.${s}.maxMessageBytes`, a?.maxMessageBytes, b?.maxMessageBytes);
    cmp(`segments.${s}.dscp`, a?.dscp, b?.dscp);
  }
  cmp('peers', previous.peers, next.peers);
  cmp('routes', previous.routes, next.routes);
  cmp('models', (previous as { models?: unknown }).models, (next as { models?: unknown }).models);
  cmp('limits', previous.limits, next.limits);
  // The access-log hook and the trace exporter are wired in at start.
  cmp('telemetry', previous.telemetry, next.telemetry);
  // The training thread reads its section once, at start.
  cmp('training', previous.training, next.training);
  return out;
}
