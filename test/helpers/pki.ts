// A throwaway PKI for TLS tests, made with the openssl CLI at test time: a CA, server and client
// certificates (EC P-256), certificates outside their validity window, and SHA-256 fingerprints.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface Issued {
  key: string;
  cert: string;
  /** Lowercase hex SHA-256 of the DER certificate. */
  fingerprint: string;
}

function openssl(args: string[], cwd: string): string {
  return execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function fingerprintOf(certFile: string): string {
  const out = openssl(['x509', '-in', certFile, '-noout', '-fingerprint', '-sha256'], path.dirname(certFile));
  return (out.split('=')[1] ?? '').trim().replace(/:/g, '').toLowerCase();
}

export class TestCa {
  readonly dir: string;
  readonly name: string;
  readonly cert: string;
  private readonly key: string;
  private serial = 1;

  constructor(dir: string, name = 'sluice-test-ca') {
    this.dir = path.join(dir, name);
    this.name = name;
    mkdirSync(this.dir, { recursive: true });
    this.key = path.join(this.dir, 'ca.key');
    this.cert = path.join(this.dir, 'ca.crt');
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', this.key, '-out', this.cert, '-subj', `/CN=${name}`, '-days', '2'], this.dir);
  }

  /** Issues a certificate. `validity` in `openssl ca` date form (YYYYMMDDHHMMSSZ) for out-of-window tests. */
  issue(cn: string, opts: { server?: boolean; startdate?: string; enddate?: string } = {}): Issued {
    const key = path.join(this.dir, `${cn}.key`);
    const csr = path.join(this.dir, `${cn}.csr`);
    const cert = path.join(this.dir, `${cn}.crt`);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`], this.dir);
    const db = path.join(this.dir, 'index.txt');
    writeFileSync(db, '');
    writeFileSync(path.join(this.dir, 'serial'), `${(this.serial++).toString(16).padStart(4, '0')}\n`);
    const ext = opts.server === true ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' : 'extendedKeyUsage=clientAuth\n';
    const conf = path.join(this.dir, 'ca.cnf');
    writeFileSync(
      conf,
      [
        '[ca]',
        'default_ca=test',
        '[test]',
        `dir=${this.dir}`,
        `database=${db}`,
        `serial=${path.join(this.dir, 'serial')}`,
        `new_certs_dir=${this.dir}`,
        `certificate=${this.cert}`,
        `private_key=${this.key}`,
        'default_md=sha256',
        'policy=any',
        'unique_subject=no',
        'copy_extensions=none',
        'x509_extensions=ext',
        '[any]',
        'commonName=supplied',
        '[ext]',
        'basicConstraints=CA:FALSE',
        ext,
      ].join('\n'),
    );
    const dates = opts.startdate !== undefined ? ['-startdate', opts.startdate, '-enddate', opts.enddate ?? ''] : ['-days', '2'];
    openssl(['ca', '-batch', '-notext', '-config', conf, '-in', csr, '-out', cert, ...dates], this.dir);
    return { key, cert, fingerprint: fingerprintOf(cert) };
  }
}
