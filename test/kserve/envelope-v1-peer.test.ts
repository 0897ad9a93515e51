// A v2 ingress against a v1 egress (sluice 0.1) over a real encrypted link. The v1 egress here
// answers with the frozen v1 codec (test/fixtures/inference-envelope-v1.ts) exactly as the v1
// EgressService did: a CALL it cannot read gets a v1 INTERNAL reply, any other is answered.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { PeerLinks } from '../../src/ingress/peer-links.ts';
import { newRequestContext, type IngressMethod } from '../../src/ingress/request-context.ts';
import { SegmentForwarder } from '../../src/ingress/segment-forwarder.ts';
import { InferenceError } from '../../src/kserve/inference-error.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { InboundMessage, Link, Listener } from '../../src/transport/types.ts';
import { CallMethod, InferenceKind } from '../../src/wire/inference-envelope.ts';
import * as v1 from '../fixtures/inference-envelope-v1.ts';

const key = randomBytes(32);
const logger = createLogger('silent', 'test');
let listener: Listener;
/** What the v1 egress saw: 'refused' or the method of each call it served. */
const seen: string[] = [];

before(async () => {
  listener = await new TcpTransport().listen({ segment: 'inference', host: '127.0.0.1', port: 0, segmentKey: key });
  listener.on('link', (link: Link) => {
    link.on('message', (m: InboundMessage) => {
      if (m.kind !== InferenceKind.CALL) return;
      const msg = { cls: 'inference', kind: InferenceKind.REPLY, streamId: m.streamId, tenant: m.tenant } as const;
      let call;
      try {
        call = v1.decodeCall(m.body);
      } catch (err) {
        seen.push('refused');
        const e = err as InferenceError;
        link.send({ ...msg, body: v1.encodeReplyHeader({ status: e.grpcStatus, code: e.code, message: e.message, requestId: 'invalid' }) });
        return;
      }
      seen.push(v1.CALL_METHOD_NAMES[call.method]);
      link.send({ ...msg, body: [v1.encodeReplyHeader({ status: 0, code: '', message: '', requestId: call.requestId }), Buffer.from(`answer to ${call.requestId}`)] });
    });
  });
});

after(async () => {
  await listener?.close();
});

async function forwarderToV1Peer(): Promise<{ fwd: SegmentForwarder; links: PeerLinks }> {
  const links = new PeerLinks({ transport: new TcpTransport(), peers: [{ name: 'old', host: '127.0.0.1', port: listener.address.port }], segmentKey: key, maxMessageBytes: 1 << 20, logger });
  const fwd = new SegmentForwarder(links, logger);
  const up = once(links, 'link');
  links.start();
  await up;
  return { fwd, links };
}

const TRACEPARENT = `00-${'4bf92f3577b34da6a3ce929d0e0e4736'}-${'00f067aa0ba902b7'}-01`;

function ctx(requestId: string, method: IngressMethod, traceparent?: string) {
  const c = newRequestContext({ requestId, protocol: 'grpc', method, model: 'simple', version: '', deadline: Date.now() + 5000, headers: {}, requestBytes: 0 });
  c.traceparent = traceparent;
  return c;
}

test('a call with a trace context reaches a v1 peer: refused once, sent again as v1, then v1 from the start', async () => {
  const { fwd, links } = await forwarderToV1Peer();
  seen.length = 0;
  const first = await fwd.call(ctx('t-1', 'ModelInfer', TRACEPARENT), CallMethod.ModelInfer, Buffer.from('req'), ['old']);
  assert.equal(first.toString(), 'answer to t-1');
  assert.deepEqual(seen, ['refused', 'ModelInfer']);
  const second = await fwd.call(ctx('t-2', 'ModelMetadata', TRACEPARENT), CallMethod.ModelMetadata, Buffer.from('req'), ['old']);
  assert.equal(second.toString(), 'answer to t-2');
  assert.deepEqual(seen, ['refused', 'ModelInfer', 'ModelMetadata'], 'the link is known to be v1: no second refusal');
  await links.close();
});

test('a v2-only method to a v1 peer fails with UNIMPLEMENTED, before and after the peer is known', async () => {
  const { fwd, links } = await forwarderToV1Peer();
  seen.length = 0;
  const failure = async (p: Promise<unknown>): Promise<InferenceError> => {
    try {
      await p;
    } catch (err) {
      assert.ok(err instanceof InferenceError);
      return err;
    }
    throw new Error('expected a failure');
  };
  const unknownYet = await failure(fwd.call(ctx('c-1', 'ModelConfig'), CallMethod.ModelConfig, Buffer.alloc(0), ['old']));
  assert.equal(unknownYet.code, 'SLUICE_ERR_NOT_IMPLEMENTED');
  assert.equal(unknownYet.grpcStatus, 12);
  assert.equal(unknownYet.httpStatus, 501);
  assert.match(unknownYet.message, /older sluice \(inference envelope v1\) that cannot forward ModelConfig/);
  assert.deepEqual(seen, ['refused']);
  const known = await failure(fwd.call(ctx('c-2', 'RepositoryIndex'), CallMethod.RepositoryIndex, Buffer.alloc(0), ['old']));
  assert.equal(known.code, 'SLUICE_ERR_NOT_IMPLEMENTED');
  assert.deepEqual(seen, ['refused'], 'nothing sent once the peer is known to be v1');
  // v1 methods without a trace context go as v1 from the start: the v1 peer reads them.
  assert.equal((await fwd.call(ctx('c-3', 'ModelReady'), CallMethod.ModelReady, Buffer.alloc(0), ['old'])).toString(), 'answer to c-3');
  await links.close();
});
