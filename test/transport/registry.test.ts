import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSluiceError } from '../../src/errors.ts';
import { createTransport, registeredTransports, type TransportName } from '../../src/transport/registry.ts';

test('tcp is registered and always available', async () => {
  assert.ok(registeredTransports().includes('tcp'));
  const r = await createTransport('tcp');
  assert.equal(r.kind, 'tcp');
  assert.equal(r.transport.kind, 'tcp');
});

test('auto picks a transport and says which and why', async () => {
  const r = await createTransport('auto');
  assert.ok(r.kind === 'tcp' || r.kind === 'rdma');
  assert.equal(r.transport.kind, r.kind);
  assert.match(r.reason, new RegExp(`^auto: ${r.kind}`));
});

test('an unknown transport name is refused with the list of names', async () => {
  await assert.rejects(createTransport('udp' as TransportName), (err: unknown) => isSluiceError(err, 'SLUICE_ERR_TRANSPORT_UNAVAILABLE') && /available: .*tcp.*auto/.test((err as Error).message));
});
