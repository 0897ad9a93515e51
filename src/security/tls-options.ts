// TLS settings of the client listeners, from the `security.tls` config: TLS 1.2 or newer, an
// explicit cipher allowlist, and (mTLS) client certificates that must chain to the given CA.
import { readFile } from 'node:fs/promises';
import type { SecureContextOptions, TlsOptions } from 'node:tls';
import type { SecurityConfig } from '../config/schema.ts';
import { SluiceError } from '../errors.ts';

export type TlsConfig = SecurityConfig['tls'];

export interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
  /** CA bundle for client certificates (mTLS only). */
  ca: Buffer | null;
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  ciphers: string;
  requireClientCert: boolean;
}

async function readPem(file: string | undefined, what: string): Promise<Buffer> {
  if (file === undefined) throw new SluiceError('SLUICE_ERR_TLS_CONFIG', `security.tls.${what} is required`);
  try {
    return await readFile(file);
  } catch (err) {
    throw new SluiceError('SLUICE_ERR_TLS_CONFIG', `${file}: cannot read ${what} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

export async function loadTlsMaterial(cfg: TlsConfig): Promise<TlsMaterial> {
  const requireClientCert = cfg.clientCerts.mode === 'require';
  return {
    key: await readPem(cfg.keyFile, 'keyFile'),
    cert: await readPem(cfg.certFile, 'certFile'),
    ca: requireClientCert ? await readPem(cfg.clientCerts.caFile, 'clientCerts.caFile') : null,
    minVersion: cfg.minVersion,
    ciphers: cfg.ciphers,
    requireClientCert,
  };
}

/** The parts that may change at run time (certificate rotation via setSecureContext). */
export function secureContextOptions(m: TlsMaterial): SecureContextOptions {
  return {
    key: m.key,
    cert: m.cert,
    ...(m.ca !== null ? { ca: m.ca } : {}),
    minVersion: m.minVersion,
    ciphers: m.ciphers,
    honorCipherOrder: true,
  };
}

/** Options for a node:tls server carrying `alpn` (h2 for gRPC, http/1.1 for HTTP). */
export function tlsServerOptions(m: TlsMaterial, alpn: string[]): TlsOptions {
  return {
    ...secureContextOptions(m),
    ALPNProtocols: alpn,
    requestCert: m.requireClientCert,
    rejectUnauthorized: m.requireClientCert,
  };
}

/** TLS 1.2 suite names of an allowlist (TLS 1.3 suites are fixed AEADs in uWS's BoringSSL). */
export function tls12Ciphers(ciphers: string): string {
  return ciphers
    .split(':')
    .filter((c) => c !== '' && !c.startsWith('TLS_'))
    .join(':');
}

/**
 * uWebSockets.js SSLApp options (native TLS, the fast path) when no client certificates are
 * needed. uWS enforces TLS 1.2 as its floor but cannot require 1.3 or expose peer certificates,
 * so mTLS or a TLS 1.3 floor go through the node:tls front instead (see https-front.ts).
 */
export function uwsSslOptions(cfg: TlsConfig): { key_file_name: string; cert_file_name: string; ssl_ciphers: string } | null {
  if (cfg.clientCerts.mode !== 'off' || cfg.minVersion !== 'TLSv1.2') return null;
  if (cfg.keyFile === undefined || cfg.certFile === undefined) return null;
  return { key_file_name: cfg.keyFile, cert_file_name: cfg.certFile, ssl_ciphers: tls12Ciphers(cfg.ciphers) };
}
