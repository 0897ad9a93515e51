import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { Logging, requestLogger, resolveLogLevel } from '../../src/telemetry/logger.ts';
import { DuplicateKeyError, parseStrictJson } from '../helpers/strict-json.ts';

function capture(): { lines: Record<string, unknown>[]; stream: Writable } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, stream };
}

test('SLUICE_LOG_LEVEL overrides the config level; a bad value names the variable and the choices', () => {
  assert.equal(resolveLogLevel('info', {}), 'info');
  assert.equal(resolveLogLevel('info', { SLUICE_LOG_LEVEL: 'DEBUG ' }), 'debug');
  assert.equal(resolveLogLevel('warn', { SLUICE_LOG_LEVEL: '' }), 'warn');
  assert.throws(
    () => resolveLogLevel('info', { SLUICE_LOG_LEVEL: 'loud' }),
    (err: Error & { code?: string }) =>
      err.code === 'SLUICE_ERR_CONFIG' && err.message === 'SLUICE_LOG_LEVEL: expected "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent", got "loud"',
  );
});

test('request loggers carry request_id, tenant and class; credentials are redacted', () => {
  const { lines, stream } = capture();
  const logging = new Logging({ level: 'info', node: 'edge-1', destination: stream });
  const ingress = logging.component('ingress.http');
  requestLogger(ingress, { requestId: 'req-42', tenant: 'acme', cls: 'inference', model: 'simple' }).info({ headers: { authorization: 'Bearer secret-token' } }, 'forwarded');
  ingress.debug('not at info');
  assert.equal(lines.length, 1);
  const l = lines[0]!;
  assert.equal(l.level, 'info');
  assert.equal(l.msg, 'forwarded');
  assert.equal(l.node, 'edge-1');
  assert.equal(l.service, 'sluice');
  assert.equal(l.component, 'ingress.http');
  assert.equal(l.request_id, 'req-42');
  assert.equal(l.tenant, 'acme');
  assert.equal(l.class, 'inference');
  assert.equal(l.model, 'simple');
  assert.deepEqual(l.headers, { authorization: '[redacted]' });
  assert.match(String(l.time), /^\d{4}-\d\d-\d\dT/);
});

test('setLevel reaches the root and every component logger', () => {
  const { lines, stream } = capture();
  const logging = new Logging({ level: 'warn', destination: stream });
  const links = logging.component('link.training');
  links.info('hidden');
  logging.setLevel('debug');
  assert.equal(logging.level, 'debug');
  links.debug('shown');
  logging.root.debug('root shown');
  logging.setLevel('silent');
  links.error('hidden too');
  assert.deepEqual(lines.map((l) => l.msg), ['shown', 'root shown']);
});

test('a child logger\'s binding replaces its parent\'s: no key appears twice in a line', () => {
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') raw.push(l);
      cb();
    },
  });
  const logging = new Logging({ level: 'info', node: 'edge-1', destination: stream });
  // What `sluice serve` does: the node's component logger, then a child per part.
  const http = logging.component('node').child({ component: 'http' });
  http.info('listening');
  http.child({ component: 'access', model: 'a' }).child({ model: 'b' }).info({ request_id: 'r1' }, 'access');
  requestLogger(http, { requestId: 'r2', model: 'simple' }).child({ request_id: 'r3' }).info('done');
  assert.equal(raw.length, 3);
  for (const line of raw) assert.doesNotThrow(() => parseStrictJson(line), line);
  const [a, b, c] = raw.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(a!.component, 'http');
  assert.equal(b!.component, 'access');
  assert.equal(b!.model, 'b');
  assert.equal(b!.node, 'edge-1');
  assert.equal(c!.request_id, 'r3');
  // The strict parser does catch a repeated key (so the check above can fail).
  assert.throws(() => parseStrictJson('{"component":"node","component":"http"}'), DuplicateKeyError);
});
