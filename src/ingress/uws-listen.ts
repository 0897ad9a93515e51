// Binds a uWS app to host:port exclusively. uWS listens with SO_REUSEPORT by default, so a second
// sluice on the same port would silently share it (and take half its connections); the
// LIBUS_LISTEN_EXCLUSIVE_PORT option turns that off. The pinned uWS's typings offer the option
// only as listen(port, options, cb), which binds every address; its native binding also takes
// listen(host, port, options, cb) (numbers after the host are read as port, then options), which
// keeps the configured host.
import { createServer } from 'node:net';
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import type { UwsModule } from './uws-loader.ts';

type ListenHostOptions = (host: string, port: number, options: number, cb: (socket: us_listen_socket | false) => void) => TemplatedApp;

/** LIBUS_LISTEN_EXCLUSIVE_PORT (the typings declare it in a const enum the module does not export). */
function exclusiveFlag(uws: UwsModule): number {
  const v = (uws as unknown as { LIBUS_LISTEN_EXCLUSIVE_PORT?: number }).LIBUS_LISTEN_EXCLUSIVE_PORT;
  return typeof v === 'number' ? v : 1;
}

/**
 * Listens on host:port without sharing the port. On failure rejects with an error shaped like
 * Node's (code EADDRINUSE, EACCES, ...): uWS only says "false", so the reason is found by
 * trying the same bind with node:net.
 */
export async function listenExclusive(uws: UwsModule, app: TemplatedApp, host: string, port: number): Promise<us_listen_socket> {
  const socket = await new Promise<us_listen_socket | false>((resolve) => {
    (app.listen as unknown as ListenHostOptions).call(app, host, port, exclusiveFlag(uws), resolve);
  });
  if (socket !== false) return socket;
  const code = await bindErrorCode(host, port);
  const err = new Error(`cannot listen on ${host}:${port} (${code})`) as NodeJS.ErrnoException;
  err.code = code;
  err.syscall = 'listen';
  throw err;
}

function bindErrorCode(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'EUNKNOWN'));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve('EUNKNOWN')));
  });
}
