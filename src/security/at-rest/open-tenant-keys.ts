// The node's tenant key store from `security.atRest` (undefined when encryption at rest is off).
import path from 'node:path';
import type { AtRestConfig } from './at-rest-config.ts';
import { FileKeyProvider } from './file-key-provider.ts';
import { TenantKeyStore } from './tenant-key-store.ts';

export function openTenantKeys(cfg: AtRestConfig, configDir = '.', force = false): TenantKeyStore | undefined {
  if (!cfg.enabled && !force) return undefined;
  if (cfg.kekFile === undefined) return undefined;
  const resolve = (f: string): string => path.resolve(configDir, f);
  const provider = FileKeyProvider.fromFiles(resolve(cfg.kekFile), cfg.previousKekFiles.map(resolve));
  return new TenantKeyStore(resolve(cfg.keyStore), provider);
}
