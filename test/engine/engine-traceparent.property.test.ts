// The engine's W3C traceparent parser and sampler (native/engine/trace_context.h) against the
// TypeScript path's own: @opentelemetry/core's propagator (the parent of a span), the CALL
// envelope's traceContextBytes (the context an unsampled call carries unchanged), and the SDK's
// TraceIdRatioBasedSampler (new traces). Headers are generated near the grammar (valid ones,
// then case, whitespace, zero ids, version ff, extra fields, truncation, random bytes) so the
// edges are hit, and as arbitrary latin1 strings.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ROOT_CONTEXT, defaultTextMapGetter, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { SamplingDecision, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base';
import { loadNativeAddon } from '../../src/crypto/native-addon.ts';
import { traceContextBytes } from '../../src/wire/inference-envelope.ts';

interface Parsed {
  traceId: string;
  spanId: string;
  flags: number;
  sampled: boolean;
}
const addon = loadNativeAddon() as unknown as { engineParseTraceparent(h: string, rules: number, ratio: number): Parsed | null };
const propagator = new W3CTraceContextPropagator();

function otel(h: string): { traceId: string; spanId: string; flags: number } | null {
  const sc = trace.getSpanContext(propagator.extract(ROOT_CONTEXT, { traceparent: h }, defaultTextMapGetter));
  return sc === undefined ? null : { traceId: sc.traceId, spanId: sc.spanId, flags: sc.traceFlags };
}

function envelope(h: string): { traceId: string; spanId: string; flags: number } | null {
  const b = traceContextBytes(h);
  return b === undefined ? null : { traceId: b.toString('hex', 1, 17), spanId: b.toString('hex', 17, 25), flags: b[25]! };
}

const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));
const space = fc.constantFrom('', ' ', '\t', '\n', '\r', '\u00a0', '  ', ' \t', '\v', '\f');
const header = fc
  .record({
    version: fc.oneof(fc.constant('00'), fc.constant('ff'), fc.constant('01'), hex(2), fc.constant('0G'), fc.constant('0A')),
    traceId: fc.oneof(hex(32), fc.constant('0'.repeat(32)), hex(32).map((s) => s.toUpperCase()), hex(31)),
    spanId: fc.oneof(hex(16), fc.constant('0'.repeat(16)), hex(16).map((s) => s.toUpperCase()), hex(17)),
    flags: fc.oneof(fc.constantFrom('00', '01', 'ff', '03'), hex(2), fc.constant('1')),
    rest: fc.oneof(fc.constant(''), fc.constant('-'), fc.constant('-x'), fc.string({ maxLength: 6 }).map((s) => `-${s}`), fc.constantFrom('x', ' -a', '-a\nb', '-a\n', '-\r'), fc.string({ maxLength: 4 })),
    lead: space,
    trail: space,
    sep: fc.constantFrom('-', '-', '-', '_'),
  })
  .map((p) => `${p.lead}${p.version}${p.sep}${p.traceId}-${p.spanId}-${p.flags}${p.rest}${p.trail}`);
const latin1 = fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 80 }).map((a) => String.fromCharCode(...a));

test('the engine accepts exactly the traceparents the OpenTelemetry propagator accepts, with the same ids', () => {
  fc.assert(
    fc.property(fc.oneof(header, latin1), (h) => {
      const want = otel(h);
      const got = addon.engineParseTraceparent(h, 0, 1);
      assert.deepEqual(got === null ? null : { traceId: got.traceId, spanId: got.spanId, flags: got.flags }, want, JSON.stringify(h));
    }),
    { numRuns: 20_000 },
  );
});

test('the engine carries unchanged exactly what the CALL envelope encoder carries (an unsampled caller header)', () => {
  fc.assert(
    fc.property(fc.oneof(header, latin1), (h) => {
      const got = addon.engineParseTraceparent(h, 1, 1);
      assert.deepEqual(got === null ? null : { traceId: got.traceId, spanId: got.spanId, flags: got.flags }, envelope(h), JSON.stringify(h));
    }),
    { numRuns: 20_000 },
  );
});

test('a new trace is sampled as TraceIdRatioBasedSampler samples it', () => {
  fc.assert(
    fc.property(hex(32).filter((t) => !/^0+$/.test(t)), hex(16).filter((s) => !/^0+$/.test(s)), fc.oneof(fc.constantFrom(0, 1, 0.5, 0.25, 1e-9, 0.999999), fc.double({ min: 0, max: 1, noNaN: true })), (traceId, spanId, ratio) => {
      const got = addon.engineParseTraceparent(`00-${traceId}-${spanId}-01`, 0, ratio)!;
      const want = new TraceIdRatioBasedSampler(ratio).shouldSample(ROOT_CONTEXT, traceId).decision === SamplingDecision.RECORD_AND_SAMPLED;
      assert.equal(got.sampled, want, `${traceId} at ${ratio}`);
    }),
    { numRuns: 20_000 },
  );
});
