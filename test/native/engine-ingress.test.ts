// The engine's ingress pieces in C++ (native/engine): the sans-IO gRPC server session against a
// real nghttp2 client, deframing, grpc-encoding and limits (the unit-test executable), and the
// C++ KServe scanner checked against the TypeScript one (src/kserve/infer-request-scan.ts) on
// the same bytes: the same verdict, status, code and message, on valid requests, on requests
// with wrong shapes and sizes, and on arbitrary bytes.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import fc from 'fast-check';
import { scanInferRequest, validateInferRequest } from '../../src/kserve/infer-request-scan.ts';
import { InferenceError, InferenceErrorCode, toInferenceError } from '../../src/kserve/inference-error.ts';
import { encodeMessage } from '../../src/kserve/proto.ts';

const BIN = path.resolve(process.env.SLUICE_ENGINE_TESTS_BIN ?? 'build/Release/engine_ingress_tests');

interface Verdict {
  ok: boolean;
  model?: string;
  id?: string;
  inputs?: number;
  status?: number;
  code?: string;
  message?: string;
}

function tsVerdict(buf: Buffer): Verdict {
  try {
    const scan = scanInferRequest(buf);
    validateInferRequest(scan, buf);
    if (scan.modelName === '') throw new InferenceError(InferenceErrorCode.BAD_REQUEST, 'the request names no model');
    return { ok: true, model: scan.modelName, id: scan.id, inputs: scan.inputs.length };
  } catch (err) {
    const e = toInferenceError(err);
    return { ok: false, status: e.grpcStatus, code: e.code, message: e.message };
  }
}

/** One long-lived `engine_ingress_tests --scan` process; requests and verdicts in order. */
class NativeScanner {
  private readonly child = spawn(BIN, ['--scan'], { stdio: ['pipe', 'pipe', 'inherit'] });
  private readonly lines: string[] = [];
  private waiting: ((line: string) => void) | undefined;

  constructor() {
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const w = this.waiting;
      if (w !== undefined) {
        this.waiting = undefined;
        w(line);
      } else this.lines.push(line);
    });
  }

  async scan(buf: Uint8Array): Promise<Verdict> {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(buf.length);
    this.child.stdin.write(Buffer.concat([len, buf]));
    const line = this.lines.shift() ?? (await new Promise<string>((resolve) => (this.waiting = resolve)));
    return JSON.parse(line) as Verdict;
  }

  close(): void {
    this.child.stdin.end();
  }
}

const skip = existsSync(BIN) ? false : `${BIN} not built (npm run build:native)`;

test('engine ingress unit tests (HTTP/2 session, deframer, compression, limits, scanner)', { skip, timeout: 60_000 }, () => {
  const r = spawnSync(BIN, [], { encoding: 'utf8', timeout: 55_000 });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /engine ingress tests: \d+ checks, 0 failures/);
});

const ascii = fc.string({ maxLength: 10, unit: fc.constantFrom(...'abcXYZ019_-. '.split('')) });
const input = fc.record({
  name: ascii,
  datatype: fc.constantFrom('FP32', 'INT32', 'BYTES', 'FP16', 'INT64', 'BOOL', 'UINT8', 'NOPE'),
  shape: fc.array(fc.oneof(fc.nat({ max: 6 }), fc.constant(-1), fc.constant(2 ** 40)), { maxLength: 4 }),
  contents: fc.option(
    fc.record({
      fp32Contents: fc.array(fc.float({ noNaN: true }), { maxLength: 6 }),
      intContents: fc.array(fc.integer({ min: -1000, max: 1000 }), { maxLength: 6 }),
      bytesContents: fc.array(fc.uint8Array({ maxLength: 3 }), { maxLength: 2 }),
    }),
    { nil: undefined },
  ),
});
const request = fc.record({
  modelName: fc.oneof(ascii, fc.constant('simple')),
  modelVersion: ascii,
  id: ascii,
  inputs: fc.array(input, { maxLength: 4 }),
  rawInputContents: fc.array(fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.constant(new Uint8Array([2, 0, 0, 0, 104, 105]))), { maxLength: 4 }),
});

function describeMismatch(buf: Uint8Array, ts: Verdict, native: Verdict): string {
  return `bytes ${Buffer.from(buf).toString('hex')}\nts     ${JSON.stringify(ts)}\nnative ${JSON.stringify(native)}`;
}

test('C++ scanner agrees with the TypeScript scanner on structured requests (verdict, status, code, message)', { skip, timeout: 120_000 }, async () => {
  const native = new NativeScanner();
  try {
    await fc.assert(
      fc.asyncProperty(request, async (req) => {
        const buf = encodeMessage('ModelInferRequest', req as never);
        const ts = tsVerdict(buf);
        const cc = await native.scan(buf);
        assert.deepEqual(cc, ts, describeMismatch(buf, ts, cc));
      }),
      { numRuns: 3000 },
    );
  } finally {
    native.close();
  }
});

test('C++ scanner agrees with the TypeScript scanner on arbitrary and mutated bytes (verdict and code)', { skip, timeout: 120_000 }, async () => {
  const native = new NativeScanner();
  const mutated = request.chain((req) => {
    const buf = encodeMessage('ModelInferRequest', req as never);
    return fc.tuple(fc.nat({ max: Math.max(0, buf.length - 1) }), fc.integer({ min: 0, max: 255 }), fc.nat({ max: buf.length })).map(([at, byte, cut]) => {
      const out = Buffer.from(buf);
      if (out.length > 0) out[at] = byte;
      return out.subarray(0, cut);
    });
  });
  try {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 64 }), mutated), async (buf) => {
        const ts = tsVerdict(Buffer.from(buf));
        const cc = await native.scan(buf);
        assert.equal(cc.ok, ts.ok, describeMismatch(buf, ts, cc));
        assert.equal(cc.code, ts.code, describeMismatch(buf, ts, cc));
        assert.equal(cc.status, ts.status, describeMismatch(buf, ts, cc));
      }),
      { numRuns: 3000 },
    );
  } finally {
    native.close();
  }
});
