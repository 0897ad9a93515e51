// `sluice keys segment [--out FILE]`: a new 32-byte pre-shared segment key (segments.<name>.key
// or keyFile), as 64 hex digits. With --out the key goes into FILE, created with mode 0600 (its
// directory, if missing, with 0700) and never over an existing file unless --force; without, to
// stdout. Both ends of a segment need the same key: copy the file, not the command.
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { KEY_BYTES } from '../../crypto/aead.ts';
import { SluiceError } from '../../errors.ts';
import { UsageError, type CliCommand } from '../command.ts';

export const keysSegmentCommand: CliCommand = {
  name: 'keys segment',
  summary: `make a new ${KEY_BYTES}-byte segment key (hex); with --out, into a file of mode 0600`,
  usage: 'sluice keys segment [--out FILE] [--force]',
  help() {
    return [
      'options:',
      '  --out FILE   write the key to FILE (mode 0600; a missing directory is made with 0700)',
      '  --force      replace FILE if it exists (default: refuse)',
      '',
      'Use it as segments.<name>.keyFile: FILE, the same file on both ends of the segment.',
    ].join('\n');
  },
  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: false, options: { out: { type: 'string' }, force: { type: 'boolean' } } });
    if (positionals.length > 0) throw new UsageError('unexpected arguments');
    const key = randomBytes(KEY_BYTES);
    const text = `${key.toString('hex')}\n`;
    key.fill(0);
    if (values.out === undefined) {
      process.stdout.write(text);
      return 0;
    }
    const file = path.resolve(values.out);
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    let fd: number;
    try {
      fd = openSync(file, values.force === true ? 'w' : 'wx', 0o600);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new SluiceError('SLUICE_ERR_KEY_EXISTS', `${file} exists; pass --force to replace it (both ends of the segment then need the new key)`);
      throw new SluiceError('SLUICE_ERR_KEY_WRITE', `cannot create ${file} (${code ?? 'EIO'})`);
    }
    try {
      // The umask may not take bits away from 0600, but --force over a looser file must tighten it.
      chmodSync(file, 0o600);
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    process.stderr.write(`wrote a new ${KEY_BYTES}-byte segment key to ${file} (mode 0600)\n`);
    return 0;
  },
};
