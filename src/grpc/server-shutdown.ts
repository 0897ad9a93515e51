// Stops a grpc-js server the way every sluice listener does: let in-flight calls finish for up
// to the grace period, then cut whatever is left, so a stop never hangs on a stuck client.
import type * as grpc from '@grpc/grpc-js';

export function shutdownGrpcServer(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(t);
      resolve();
    });
  });
}
