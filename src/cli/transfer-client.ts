// The TensorTransfer client the `sluice transfers` commands use: which address (--address, else
// the training listener of --config / SLUICE_CONFIG, else the design's default 127.0.0.1:8003)
// and which credentials (--ca for TLS, --api-key or SLUICE_API_KEY, --token).
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { loadConfigFile } from '../config/load.ts';
import { connect, type SluiceClient } from '../training/client.ts';
import { UsageError } from './command.ts';

/** The training listener's port in the design (TensorTransfer, GetStatus, List). */
export const DEFAULT_TRAINING_ADDRESS = '127.0.0.1:8003';

export const TRANSFER_CLIENT_OPTIONS = {
  address: { type: 'string' },
  config: { type: 'string' },
  ca: { type: 'string' },
  'api-key': { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
} as const;

export const TRANSFER_CLIENT_HELP = [
  'options:',
  `  --address HOST:PORT  the node's training listener (default: from --config, else ${DEFAULT_TRAINING_ADDRESS})`,
  '  --config FILE        take the address from this config (listeners.training); also SLUICE_CONFIG',
  '  --ca FILE            connect with TLS, trusting this CA',
  '  --api-key KEY        x-api-key for the security gates (also SLUICE_API_KEY)',
  '  --token JWT          bearer token for the security gates',
  '  --json               machine-readable output',
].join('\n');

export interface TransferClientFlags {
  address?: string | undefined;
  config?: string | undefined;
  ca?: string | undefined;
  'api-key'?: string | undefined;
  token?: string | undefined;
}

function listenerAddress(file: string): string | undefined {
  // TensorTransfer is served on listeners.training alone (listeners.grpc answers UNIMPLEMENTED).
  const l = loadConfigFile(file).listeners.training;
  if (l === undefined) return undefined;
  const host = l.host === '0.0.0.0' || l.host === '::' ? '127.0.0.1' : l.host;
  return host.includes(':') ? `[${host}]:${l.port}` : `${host}:${l.port}`;
}

export function transferAddress(flags: TransferClientFlags): string {
  if (flags.address !== undefined) {
    if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(flags.address)) throw new UsageError('--address must be HOST:PORT');
    return flags.address;
  }
  const file = flags.config ?? process.env.SLUICE_CONFIG;
  if (file !== undefined && file !== '') {
    const a = listenerAddress(file);
    if (a !== undefined) return a;
  }
  return DEFAULT_TRAINING_ADDRESS;
}

export function openTransferClient(flags: TransferClientFlags): { client: SluiceClient; address: string } {
  const address = transferAddress(flags);
  const metadata: Record<string, string> = {};
  const apiKey = flags['api-key'] ?? process.env.SLUICE_API_KEY;
  if (apiKey !== undefined && apiKey !== '') metadata['x-api-key'] = apiKey;
  if (flags.token !== undefined) metadata.authorization = `Bearer ${flags.token}`;
  const credentials = flags.ca === undefined ? undefined : grpc.credentials.createSsl(readFileSync(flags.ca));
  const client = connect(address, { metadata, ...(credentials !== undefined ? { credentials } : {}) });
  return { client, address };
}
