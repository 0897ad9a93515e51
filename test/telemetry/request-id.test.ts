import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveRequestId, traceIdFromTraceparent } from '../../src/telemetry/request-id.ts';

test('a valid x-request-id is kept', () => {
  assert.equal(resolveRequestId('abc-123_x.y:z', undefined), 'abc-123_x.y:z');
});

test('an invalid x-request-id falls back to traceparent, then to a fresh UUID', () => {
  const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  assert.equal(resolveRequestId('bad id with spaces', tp), '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.equal(resolveRequestId('x'.repeat(129), tp), '4bf92f3577b34da6a3ce929d0e0e4736');
  const gen = resolveRequestId('"quoted"', undefined);
  assert.match(gen, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.notEqual(resolveRequestId(undefined, undefined), resolveRequestId(undefined, undefined));
});

test('traceparent rules: version ff, all-zero ids and bad lengths are invalid', () => {
  assert.equal(traceIdFromTraceparent('ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), undefined);
  assert.equal(traceIdFromTraceparent('00-00000000000000000000000000000000-00f067aa0ba902b7-01'), undefined);
  assert.equal(traceIdFromTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01'), undefined);
  assert.equal(traceIdFromTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra'), undefined);
  assert.equal(traceIdFromTraceparent('00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01'), undefined);
});
