// HealthMirror: a copy of a HealthModel's service statuses on another thread (structured clone
// in between), answering like the model and emitting 'change' only when a status changed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HealthModel } from '../../src/telemetry/health.ts';
import { HealthMirror, serviceStatuses } from '../../src/telemetry/health-mirror.ts';

test('the mirror answers what the model answers, after every update', () => {
  const model = new HealthModel();
  const mirror = new HealthMirror(structuredClone(serviceStatuses(model)));
  let changes = 0;
  mirror.on('change', () => changes++);
  const sync = (): void => mirror.apply(structuredClone(serviceStatuses(model)));
  const same = (service: string): void => assert.equal(mirror.serviceStatus(service), model.serviceStatus(service), service);

  assert.deepEqual(mirror.knownServices(), ['']);
  same('');
  same('sluice.v1.TensorTransfer');
  assert.equal(mirror.serviceStatus('nope'), 'SERVICE_UNKNOWN');

  const gate = model.register('x', { kind: 'other', services: ['sluice.v1.TensorTransfer'] });
  model.markStarted();
  sync();
  assert.equal(changes, 1, 'a new service is a change');
  for (const s of ['', 'sluice.v1.TensorTransfer', 'other']) same(s);
  assert.equal(mirror.serviceStatus('sluice.v1.TensorTransfer'), 'NOT_SERVING');

  sync();
  assert.equal(changes, 1, 'the same statuses again: no change');

  gate.up();
  sync();
  assert.equal(changes, 2);
  assert.equal(mirror.serviceStatus(), 'SERVING');

  model.startDraining();
  sync();
  assert.equal(changes, 3);
  for (const s of mirror.knownServices()) assert.equal(mirror.serviceStatus(s), 'NOT_SERVING', s);
});
