// Loads uWebSockets.js and refuses to run on its pure-JS fallback: the npm copy silently falls
// back to a slow Node server when its native binary does not load (or UWS_USE_FALLBACK is set).
import { createRequire } from 'node:module';
import type * as Uws from 'uWebSockets.js';
import { SluiceError } from '../errors.ts';

export type UwsModule = typeof Uws;

let loaded: UwsModule | undefined;

export function loadUws(): UwsModule {
  if (loaded !== undefined) return loaded;
  const require = createRequire(import.meta.url);
  const uws = require('uWebSockets.js') as UwsModule;
  if (!String(uws.App).includes('[native code]')) {
    throw new SluiceError(
      'SLUICE_ERR_UWS_NATIVE',
      `uWebSockets.js did not load its native build for Node ${process.versions.node} (ABI ${process.versions.modules}, ${process.platform}-${process.arch})` +
        `${process.env.UWS_USE_FALLBACK ? ' because UWS_USE_FALLBACK is set' : ''}; the HTTP ingress will not run on its slow JS fallback. ` +
        'Use Node 20 on glibc 2.27 or newer and reinstall (npm ci).',
    );
  }
  loaded = uws;
  return uws;
}
