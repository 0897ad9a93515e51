// The RDMA endpoint record comes from the peer (inside an authenticated frame, but a peer can
// be buggy or hostile): any bytes decode to an in-range record or a WireError, never anything
// else, and every valid record round-trips.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeEndpoint, encodeEndpoint, ENDPOINT_BYTES, MAX_SLOT_BYTES, MAX_WINDOW, MIN_SLOT_BYTES, type RdmaEndpoint } from '../../src/transport/rdma/rdma-endpoint.ts';
import { WireError, WireErrorCode } from '../../src/wire/errors.ts';

const endpoint: fc.Arbitrary<RdmaEndpoint> = fc.record({
  qpn: fc.integer({ min: 1, max: 0xffffff }),
  psn: fc.integer({ min: 0, max: 0xffffff }),
  gid: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a)),
  lid: fc.integer({ min: 0, max: 0xffff }),
  mtu: fc.constantFrom(256, 512, 1024, 2048, 4096),
  window: fc.integer({ min: 1, max: MAX_WINDOW }),
  slotBytes: fc.integer({ min: MIN_SLOT_BYTES, max: MAX_SLOT_BYTES }),
});

test('valid records round-trip', () => {
  fc.assert(
    fc.property(endpoint, (e) => {
      const raw = encodeEndpoint(e);
      assert.equal(raw.byteLength, ENDPOINT_BYTES);
      assert.deepEqual(decodeEndpoint(raw), { ...e }); // fc.record builds null-prototype objects
    }),
  );
});

test('any bytes: an in-range record or WireError MALFORMED, nothing else', () => {
  // Mostly right-sized inputs (so the field checks are reached), some of any length.
  const bytes = fc.oneof(
    { weight: 4, arbitrary: fc.uint8Array({ minLength: ENDPOINT_BYTES, maxLength: ENDPOINT_BYTES }) },
    { weight: 4, arbitrary: endpoint.chain((e) => fc.tuple(fc.nat(ENDPOINT_BYTES - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
      const raw = encodeEndpoint(e);
      raw[i] = (raw[i] as number) ^ x;
      return new Uint8Array(raw);
    })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2 * ENDPOINT_BYTES }) },
  );
  fc.assert(
    fc.property(bytes, (b) => {
      let e: RdmaEndpoint;
      try {
        e = decodeEndpoint(b);
      } catch (err) {
        assert.ok(err instanceof WireError, String(err));
        assert.equal(err.code, WireErrorCode.MALFORMED);
        assert.match(err.message, /^RDMA endpoint record: /);
        return;
      }
      assert.ok(e.qpn >= 1 && e.qpn <= 0xffffff);
      assert.ok(e.psn <= 0xffffff);
      assert.ok([256, 512, 1024, 2048, 4096].includes(e.mtu));
      assert.ok(e.window >= 1 && e.window <= MAX_WINDOW);
      assert.ok(e.slotBytes >= MIN_SLOT_BYTES && e.slotBytes <= MAX_SLOT_BYTES);
      assert.equal(e.gid.byteLength, 16);
      assert.deepEqual(encodeEndpoint(e), Buffer.from(b), 'a record that decodes re-encodes to the same bytes');
    }),
    { numRuns: 2000 },
  );
});
