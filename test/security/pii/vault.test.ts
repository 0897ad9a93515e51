// The reversible-mode vault at rest: AES-256-GCM per tenant, tokens stable per tenant and
// different across tenants, records bound to tenant and token, the wrong key refused.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { PiiVault, revealFromVaultFile } from '../../../src/security/pii/vault.ts';
import { tempDir } from '../../helpers/temp-dir.ts';

test('tokens are stable per tenant, differ across tenants, and decrypt only for their tenant and key', async () => {
  const dir = tempDir();
  const keyFile = path.join(dir, 'k');
  writeFileSync(keyFile, randomBytes(32));
  const vault = await PiiVault.open({ dir: path.join(dir, 'v'), keyFile });
  await vault.load('a');
  await vault.load('b');
  const ta = vault.tokenize('a', 'email', 'x@example.com');
  assert.equal(vault.tokenize('a', 'email', 'x@example.com'), ta);
  const tb = vault.tokenize('b', 'email', 'x@example.com');
  assert.notEqual(ta, tb);
  assert.match(ta, /^\[EMAIL:[0-9a-f]{16}\]$/);
  await vault.flush();
  assert.equal(vault.reveal('a', ta), 'x@example.com');
  assert.equal(vault.reveal('b', ta), undefined);
  const fileA = vault.fileOf('a');
  const fileB = vault.fileOf('b');
  assert.ok(!readFileSync(fileA, 'utf8').includes('x@example.com'));
  assert.equal(await revealFromVaultFile({ dir: path.join(dir, 'v'), keyFile, tenant: 'a', token: ta }), 'x@example.com');
  // A record copied into another tenant's file under that tenant's name does not decrypt.
  writeFileSync(fileB, readFileSync(fileA));
  await assert.rejects(revealFromVaultFile({ dir: path.join(dir, 'v'), keyFile, tenant: 'b', token: ta }), /does not authenticate/);
  // Another key: refused.
  const other = path.join(dir, 'k2');
  writeFileSync(other, randomBytes(32).toString('hex'));
  await assert.rejects(revealFromVaultFile({ dir: path.join(dir, 'v'), keyFile: other, tenant: 'a', token: ta }), /does not authenticate/);
  // An altered ciphertext: refused.
  const rec = JSON.parse(readFileSync(fileA, 'utf8').trim()) as { ct: string };
  const ct = Buffer.from(rec.ct, 'base64');
  ct[0] = ct[0]! ^ 1;
  writeFileSync(fileA, `${JSON.stringify({ ...rec, ct: ct.toString('base64') })}\n`);
  await assert.rejects(revealFromVaultFile({ dir: path.join(dir, 'v'), keyFile, tenant: 'a', token: ta }), /does not authenticate/);
});

test('a bad key file is refused with the setting named', async () => {
  const dir = tempDir();
  const keyFile = path.join(dir, 'k');
  writeFileSync(keyFile, 'short');
  await assert.rejects(PiiVault.open({ dir, keyFile }), /security\.pii\.vault\.keyFile/);
});
