// Property tests of the tensor tap's reading half (src/engine/engine-tensor-tap.ts): records in
// native/engine/tensor_tap.h's layout round-trip to the tensors threats/inference-tap.ts would
// have produced; random bytes, truncations and mutations of a record are a TapRecordError or a
// record, never another error; and the ring reader returns every record a writer placed (with
// the writer's wrap and drop rules) in order, however the drains interleave. The native writer
// itself is fuzzed with the same reader rules (native/engine/fuzz/fuzz_tensor_tap.cc) and driven
// end to end in engine-slow-path.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type Datatype, datatypeInfo } from '../../src/kserve/datatypes.ts';
import { encodeMessage } from '../../src/kserve/proto.ts';
import { EngineTensorTapRing, parseTapRecord, TAP_HEADER_BYTES, TapRecordError, type EngineTappedCall } from '../../src/engine/engine-tensor-tap.ts';
import { rawToFloats } from '../../src/security/threats/inference-tap.ts';

const CODES: readonly Datatype[] = ['UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BF16'];
const align8 = (n: number) => (n + 7) & ~7;

interface Input {
  name: string;
  dt: Datatype;
  shape: number[];
  data: Uint8Array;
}
interface Call {
  tenant: number;
  model: string;
  requestId: string;
  inputs: Input[];
}

/** A record as tensor_tap.h Offer() writes it. */
function encode(c: Call): Buffer {
  const model = Buffer.from(c.model);
  const id = Buffer.from(c.requestId);
  let size = align8(16 + model.length + id.length);
  for (const i of c.inputs) size += align8(8 + 8 * i.shape.length + Buffer.byteLength(i.name)) + align8(i.data.length);
  const b = Buffer.alloc(size);
  b.writeUInt32LE(size, 0);
  b.writeUInt32LE(c.tenant, 4);
  b.writeUInt16LE(model.length, 8);
  b.writeUInt16LE(id.length, 10);
  b.writeUInt16LE(c.inputs.length, 12);
  model.copy(b, 16);
  id.copy(b, 16 + model.length);
  let p = align8(16 + model.length + id.length);
  for (const i of c.inputs) {
    const name = Buffer.from(i.name);
    b.writeUInt16LE(name.length, p);
    b.writeUInt8(CODES.indexOf(i.dt) + 1, p + 2);
    b.writeUInt8(i.shape.length, p + 3);
    b.writeUInt32LE(i.data.length, p + 4);
    p += 8;
    for (const d of i.shape) {
      b.writeDoubleLE(d, p);
      p += 8;
    }
    name.copy(b, p);
    p = align8(p + name.length);
    b.set(i.data, p);
    p = align8(p + i.data.length);
  }
  return b;
}

const inputArb = fc
  .record({ name: fc.string({ maxLength: 12 }), dt: fc.constantFrom(...CODES), shape: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 3 }) })
  .chain((i) => {
    const n = i.shape.reduce((a, b) => a * b, 1) * datatypeInfo(i.dt)!.size;
    return fc.uint8Array({ minLength: n, maxLength: n }).map((data): Input => ({ ...i, data }));
  });
const callArb = fc.record({
  tenant: fc.nat({ max: 0xffffffff }),
  model: fc.string({ maxLength: 20 }),
  requestId: fc.string({ maxLength: 40 }),
  inputs: fc.array(inputArb, { maxLength: 4 }),
});

function sameTensors(got: EngineTappedCall, c: Call): void {
  assert.equal(got.tenant, c.tenant);
  assert.equal(got.model, c.model);
  assert.equal(got.requestId, c.requestId);
  assert.equal(got.inputs.length, c.inputs.length);
  got.inputs.forEach((t, k) => {
    const i = c.inputs[k]!;
    assert.equal(t.name, i.name);
    assert.deepEqual(t.shape, i.shape);
    assert.deepEqual(t.values, rawToFloats(i.dt, i.data));
  });
}

test('records round-trip to the tensors the TypeScript tap reads', () => {
  fc.assert(
    fc.property(callArb, (c) => {
      sameTensors(parseTapRecord(encode(c)), c);
    }),
    { numRuns: 300 },
  );
});

test('a whole-message record (typed contents) is read by tapInputs', () => {
  const msg = encodeMessage('ModelInferRequest', { modelName: 'dense', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], contents: { fp32Contents: [1, 2.5, -3] } }] });
  const head = Buffer.alloc(align8(16 + 5 + 2) + 8);
  head.writeUInt32LE(head.length + align8(msg.length), 0);
  head.writeUInt32LE(7, 4);
  head.writeUInt16LE(5, 8);
  head.writeUInt16LE(2, 10);
  head.writeUInt16LE(0xffff, 12);
  head.write('dense', 16);
  head.write('r1', 21);
  head.writeUInt32LE(msg.length, head.length - 4);
  const rec = Buffer.concat([head, msg, Buffer.alloc(align8(msg.length) - msg.length)]);
  const got = parseTapRecord(rec);
  assert.equal(got.model, 'dense');
  assert.equal(got.requestId, 'r1');
  assert.deepEqual([...got.inputs[0]!.values], [1, 2.5, -3]);
  assert.deepEqual(got.inputs[0]!.shape, [1, 3]);
});

function parsesOrTyped(bytes: Uint8Array): void {
  try {
    parseTapRecord(bytes);
  } catch (err) {
    assert.ok(err instanceof TapRecordError, `not a TapRecordError: ${(err as Error).stack}`);
  }
}

test('random bytes, truncations and mutations are a record or a TapRecordError', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), parsesOrTyped), { numRuns: 500 });
  fc.assert(
    fc.property(callArb, fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 }), (c, cut, at, v) => {
      const rec = encode(c);
      parsesOrTyped(rec.subarray(0, cut % (rec.length + 1)));
      const m = Buffer.from(rec);
      m[at % m.length] = v;
      parsesOrTyped(m);
    }),
    { numRuns: 500 },
  );
});

/** A writer with tensor_tap.h's placement rules (wrap marker, half-ring limit, drop when full). */
function offer(ring: EngineTensorTapRing, capacity: number, rec: Buffer): boolean {
  const h = new Uint32Array(ring.buffer, 0, 16);
  const w = h[0]!;
  const r = Atomics.load(h, 1);
  const used = (w - r) >>> 0;
  const off = w & (capacity - 1);
  const tail = capacity - off;
  const total = rec.length + (tail < rec.length ? tail : 0);
  if (rec.length > capacity / 2 || total > capacity - used) {
    h[2] = (h[2]! + 1) >>> 0;
    return false;
  }
  let at = w;
  if (tail < rec.length) {
    new DataView(ring.buffer).setUint32(TAP_HEADER_BYTES + off, 0xffffffff, true);
    at = (at + tail) >>> 0;
  }
  ring.view.set(rec, TAP_HEADER_BYTES + (at & (capacity - 1)));
  Atomics.store(h, 0, (at + rec.length) >>> 0);
  h[4] = (h[4]! + 1) >>> 0;
  return true;
}

test('the ring hands back every record written, in order, across wraps and drops', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(callArb.map((c) => ({ c })), fc.constant({ drain: true })), { maxLength: 60 }), (steps) => {
      const capacity = 4096;
      const ring = new EngineTensorTapRing(capacity);
      const expected: Call[] = [];
      const got: EngineTappedCall[] = [];
      let drops = 0;
      for (const s of steps) {
        if ('drain' in s) {
          ring.drain((c) => got.push(c));
          continue;
        }
        if (offer(ring, capacity, encode(s.c))) expected.push(s.c);
        else drops++;
      }
      ring.drain((c) => got.push(c));
      assert.equal(got.length, expected.length);
      got.forEach((g, k) => sameTensors(g, expected[k]!));
      assert.equal(ring.takeDropped(), drops);
      assert.equal(ring.badRecords, 0);
    }),
    { numRuns: 300 },
  );
});

test('a wrap marker at the end of the ring sends the reader to its start (the case that found an int32 bug)', () => {
  const capacity = 4096;
  const ring = new EngineTensorTapRing(capacity);
  const call = (n: number): Call => ({ tenant: n, model: 'm', requestId: `r${n}`, inputs: [{ name: 'x', dt: 'FP32', shape: [1, 250], data: new Uint8Array(1000) }] });
  const got: EngineTappedCall[] = [];
  for (let n = 0; n < 12; n++) {
    assert.ok(offer(ring, capacity, encode(call(n))));
    if (n % 2 === 1) ring.drain((c) => got.push(c));
  }
  assert.deepEqual(got.map((c) => c.tenant), [...Array(12).keys()]);
  assert.equal(ring.badRecords, 0);
});
