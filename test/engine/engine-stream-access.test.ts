// ModelStreamInfer message by message: the access lines and spans of a stream on the native
// engine's gRPC ingress against the TypeScript ingress (SLUICE_ENGINE=0), with real `sluice
// serve` processes (a model server, and per path an egress + ingress pair with the access log
// and tracing on, each path with its own OTLP/HTTP receiver). On the TypeScript ingress each
// stream message is a request of its own (http2-grpc-ingress.ts stream(): a ModelInfer context
// per message, `<stream's request id>:<n>`), so it gets its own access line and its own span set;
// the stream itself gets none. The engine must write the same:
//  - one ingress access line per message, none for the stream: request id, tenant, model,
//    protocol, method (ModelInfer), status and code of that message, its bytes in and out, the
//    peer and attempts when it went out, its trace id; the key sets equal across the paths;
//  - a message that fails in-band at the egress (a model nobody serves: NOT_FOUND) and one the
//    ingress refuses before it has a context (it names no model: INVALID_ARGUMENT, no trace id,
//    no span) each have their line;
//  - one egress `segment` line per message that left the ingress;
//  - one `ingress` span per message (with its `link` child when it went out), children of the
//    client's span, each message's CALL carrying its own span (the egress span's parent); a
//    stream without traceparent: a new trace per message, the same id in its lines and spans;
//  - a stream that ends at its deadline with a message still at a model server that never
//    answers: that message has its line and span too (DEADLINE_EXCEEDED, or CANCELLED when the
//    stream's end wins the race), the answered one its own.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { startSluice, type SluiceProcess } from '../../scripts/sluice-child.ts';
import { KserveClient, firstAnswered } from '../helpers/kserve-client.ts';
import { attr, otlpReceiver, type OtlpReceiver, type OtlpSpan } from '../helpers/otlp-receiver.ts';

const processes: SluiceProcess[] = [];
const receivers: OtlpReceiver[] = [];
let silent: Server | undefined;
after(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  for (const r of receivers) r.close();
  silent?.close();
});

/** A model server that takes connections and never answers (a call to it ends at its deadline). */
async function silentModelServer(): Promise<string> {
  const held: Socket[] = [];
  silent = createServer((sock) => {
    held.push(sock);
    sock.on('error', () => {});
    sock.resume();
  });
  silent.on('close', () => held.forEach((x) => x.destroy()));
  await new Promise<void>((resolve) => silent!.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(silent.address() as { port: number }).port}`;
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
type Line = Record<string, unknown>;
type Span = OtlpSpan & { service: string };

const A = Array.from({ length: 16 }, (_, i) => i);
const inputs = [
  { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { intContents: A } },
  { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { intContents: A } },
];
// The stream: m2 names a model nobody serves (the egress answers NOT_FOUND, in-band), m3 names
// none (the ingress refuses it in-band before it has a request context).
const MESSAGES = [
  { id: 'm1', modelName: 'simple', inputs },
  { id: 'm2', modelName: 'no-such-model', inputs },
  { id: 'm3', inputs },
  { id: 'm4', modelName: 'simple', inputs },
  { id: 'm5', modelName: 'simple', inputs },
];
const FORWARDED = [1, 2, 4, 5];
const OK = [1, 4, 5];
const STREAM = 'stream-1';
const FRESH = 'stream-2'; // no traceparent: each message a trace of its own
const LATE = 'stream-3'; // ends at its deadline with its second message unanswered

async function start(config: object, name: string, env: Record<string, string>): Promise<SluiceProcess> {
  const p = await startSluice(config, { name, env });
  processes.push(p);
  return p;
}

interface PathRun {
  ingress: SluiceProcess;
  egress: SluiceProcess;
  otlp: OtlpReceiver;
  answers: { errorMessage: string; inferResponse: { id?: string; modelName?: string } | null }[];
  clientTrace: string;
  clientSpan: string;
}

async function runPath(models: string, silentModels: string, env: Record<string, string>, tag: string): Promise<PathRun> {
  const otlp = await otlpReceiver();
  receivers.push(otlp);
  const telemetry = { accessLog: true, otlp: { endpoint: otlp.url } };
  const key = randomBytes(32).toString('base64');
  const egress = await start(
    {
      node: { name: `egress-${tag}` },
      segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: 0 } } },
      // Only `simple` (and `silent`, which never answers) have a model server: the egress
      // answers any other model NOT_FOUND.
      routes: [
        { model: 'simple', upstreams: [{ address: models }] },
        { model: 'silent', upstreams: [{ address: silentModels }] },
      ],
      telemetry,
    },
    `egress-${tag}`,
    env,
  );
  const [host, port] = egress.endpoints.segment!.split(':') as [string, string];
  const ingress = await start(
    {
      node: { name: `ingress-${tag}` },
      listeners: { grpc: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key } },
      peers: [{ name: 'egress-a', segment: 'inference', host, port: Number(port) }],
      routes: [{ model: '*', peers: ['egress-a'] }],
      telemetry,
    },
    `ingress-${tag}`,
    env,
  );
  const kc = new KserveClient(ingress.endpoints.grpc!);
  try {
    // The link comes up in the background: the first call may find none yet.
    let warm = 0;
    await firstAnswered(() => kc.infer({ modelName: 'simple', inputs }, { requestId: `warm-${warm++}` }));
    const clientTrace = randomBytes(16).toString('hex');
    const clientSpan = randomBytes(8).toString('hex');
    const answers = await kc.stream(MESSAGES, 20_000, { 'x-request-id': STREAM, traceparent: `00-${clientTrace}-${clientSpan}-01` });
    const fresh = await kc.stream([MESSAGES[0]!, MESSAGES[3]!], 20_000, { 'x-request-id': FRESH });
    assert.equal(fresh.length, 2);
    assert.ok(fresh.every((a) => a.errorMessage === ''), JSON.stringify(fresh));
    const late = await kc.stream([MESSAGES[0]!, { id: 'm6', modelName: 'silent', inputs }], 1500, { 'x-request-id': LATE }).then(
      () => 0,
      (e: { code: number }) => e.code,
    );
    assert.equal(late, 4, 'the stream ended at its deadline');
    // Wait for every line (the batched records) and every span (the 1 s OTLP exports).
    const want = {
      ingressLines: MESSAGES.length + 4,
      egressLines: FORWARDED.length + 4,
      ingressSpans: FORWARDED.length + 4,
    };
    const deadline = Date.now() + 30_000;
    for (;;) {
      const il = accessLines(ingress).filter((l) => String(l.request_id).startsWith('stream-')).length;
      const el = accessLines(egress).filter((l) => String(l.request_id).startsWith('stream-')).length;
      const is = otlp.spans.filter((s) => s.name === 'ingress' && String(attr(s, 'sluice.request_id')).startsWith('stream-')).length;
      const es = otlp.spans.filter((s) => s.name === 'egress' && String(attr(s, 'sluice.request_id')).startsWith('stream-')).length;
      if ((il >= want.ingressLines && el >= want.egressLines && is >= want.ingressSpans && es >= OK.length + 2) || Date.now() > deadline) break;
      await sleep(100);
    }
    await sleep(300); // anything extra (a stray per-stream line) would have come by now
    return { ingress, egress, otlp, answers, clientTrace, clientSpan };
  } finally {
    kc.close();
  }
}

const accessLines = (p: SluiceProcess): Line[] => p.logs.filter((l) => l.msg === 'access');
const rid = (n: number, stream = STREAM): string => `${stream}:${n}`;

/** The access lines of a process with this request id (exactly one expected). */
function lineOf(p: SluiceProcess, id: string, side: string): Line {
  const found = accessLines(p).filter((l) => l.request_id === id);
  assert.equal(found.length, 1, `${side}: one access line for ${id}, got ${JSON.stringify(found)}; all: ${JSON.stringify(accessLines(p).map((l) => l.request_id))}`);
  return found[0]!;
}

const ingressSpanOf = (r: PathRun, id: string): Span[] => r.otlp.spans.filter((s) => s.name === 'ingress' && attr(s, 'sluice.request_id') === id);

/** What one path wrote for the stream, checked on its own; returns the lines for the cross-path comparison. */
function checkPath(r: PathRun, name: string): { ingress: Map<string, Line>; egress: Map<string, Line> } {
  // The answers: one per message, the failed ones in-band naming their message's request id.
  assert.equal(r.answers.length, MESSAGES.length, `${name}: one answer per message`);
  const byId = new Map(r.answers.map((a) => [a.inferResponse?.id ?? '', a]));
  for (const n of OK) assert.equal(byId.get(`m${n}`)?.errorMessage, '', `${name}: m${n} answered`);
  for (const n of [2, 3]) assert.ok(byId.get(`m${n}`)?.errorMessage.endsWith(`(request_id ${rid(n)})`), `${name}: m${n} in-band: ${JSON.stringify(byId.get(`m${n}`))}`);

  const ingress = new Map<string, Line>();
  const egress = new Map<string, Line>();
  // No line for a stream itself, on either side.
  for (const s of [STREAM, FRESH]) {
    assert.equal(accessLines(r.ingress).filter((l) => l.request_id === s).length, 0, `${name}: no ingress line for the stream ${s}`);
    assert.equal(ingressSpanOf(r, s).length, 0, `${name}: no span for the stream ${s}`);
  }
  for (let n = 1; n <= MESSAGES.length; n++) {
    const id = rid(n);
    const l = lineOf(r.ingress, id, `${name} ingress`);
    ingress.set(id, l);
    assert.equal(l.component, 'access');
    assert.equal(l.protocol, 'grpc');
    assert.equal(l.method, 'ModelInfer', `${name}: ${id} is a ModelInfer request of its own`);
    assert.equal(l.tenant, 0);
    assert.ok((l.bytes_in as number) > 0, `${name}: bytes_in of ${id}`);
    for (const k of ['total_ms', 'queue_ms', 'upstream_ms']) assert.ok(typeof l[k] === 'number' && (l[k] as number) >= 0, `${name}: ${k} of ${id}: ${JSON.stringify(l)}`);
    assert.ok((l.queue_ms as number) + (l.upstream_ms as number) <= (l.total_ms as number) + 0.002, `${name}: times of ${id}: ${JSON.stringify(l)}`);
    if (FORWARDED.includes(n)) {
      assert.equal(l.peer, 'egress-a', `${name}: peer of ${id}`);
      assert.equal(l.attempts, 1, `${name}: attempts of ${id}`);
      assert.equal(l.trace_id, r.clientTrace, `${name}: ${id} continues the client's trace`);
      assert.ok((l.upstream_ms as number) > 0, `${name}: upstream_ms of ${id}`);
    } else {
      assert.ok(!('peer' in l) && !('attempts' in l), `${name}: ${id} never left the ingress: ${JSON.stringify(l)}`);
      assert.ok(!('trace_id' in l), `${name}: ${id} was refused before it had a context: ${JSON.stringify(l)}`);
    }
    if (OK.includes(n)) {
      assert.deepEqual([l.status, l.code, l.model], [0, 'OK', 'simple'], `${name}: ${id}`);
      assert.ok((l.bytes_out as number) > 0, `${name}: bytes_out of ${id}`);
    }
  }
  assert.deepEqual([ingress.get(rid(2))!.status, ingress.get(rid(2))!.code, ingress.get(rid(2))!.model, ingress.get(rid(2))!.bytes_out], [5, 'NOT_FOUND', 'no-such-model', 0]);
  assert.deepEqual([ingress.get(rid(3))!.status, ingress.get(rid(3))!.code, ingress.get(rid(3))!.model, ingress.get(rid(3))!.bytes_out], [3, 'INVALID_ARGUMENT', '', 0]);
  // The failed messages' log lines (inference-gateway.ts finish()), one each.
  for (const n of [2, 3]) {
    const failed = r.ingress.logs.filter((l) => l.request_id === rid(n) && l.msg !== 'access');
    assert.equal(failed.length, 1, `${name}: one failure line for ${rid(n)}: ${JSON.stringify(failed)}`);
    assert.deepEqual([failed[0]!.method, failed[0]!.grpc_status], ['ModelInfer', n === 2 ? 5 : 3], `${name}: ${JSON.stringify(failed[0])}`);
  }

  // The egress: one segment line per message that left the ingress.
  for (const n of FORWARDED) {
    const id = rid(n);
    const l = lineOf(r.egress, id, `${name} egress`);
    egress.set(id, l);
    assert.equal(l.protocol, 'segment');
    assert.equal(l.status, ingress.get(id)!.status, `${name}: ${id} has the same status at both ends`);
    assert.equal(l.bytes_in, ingress.get(id)!.bytes_in, `${name}: ${id} carries its own bytes`);
  }
  assert.equal(accessLines(r.egress).filter((l) => l.request_id === rid(3)).length, 0, `${name}: the refused message never reached the egress`);

  // Spans: one ingress span per message that had a context, a child of the client's span; its
  // link child; the egress span of each forwarded message is the child of that message's span.
  for (let n = 1; n <= MESSAGES.length; n++) {
    const id = rid(n);
    const spans = ingressSpanOf(r, id);
    if (n === 3) {
      assert.equal(spans.length, 0, `${name}: no span for the refused ${id}`);
      continue;
    }
    assert.equal(spans.length, 1, `${name}: one ingress span for ${id}`);
    const s = spans[0]!;
    assert.equal(s.traceId, r.clientTrace, `${name}: ${id} in the client's trace`);
    assert.equal(s.parentSpanId, r.clientSpan, `${name}: ${id} a child of the client's span`);
    assert.equal(s.kind, 2, 'SERVER');
    assert.deepEqual(
      ['sluice.method', 'sluice.model', 'sluice.status', 'sluice.code', 'sluice.bytes_in', 'sluice.bytes_out', 'sluice.tenant'].map((k) => attr(s, k)),
      ['ModelInfer', ingress.get(id)!.model, ingress.get(id)!.status, ingress.get(id)!.code, ingress.get(id)!.bytes_in, ingress.get(id)!.bytes_out, 0],
      `${name}: attributes of ${id}`,
    );
    assert.equal(s.status?.code ?? 0, OK.includes(n) ? 0 : 2, `${name}: span status of ${id}`);
    const links = r.otlp.spans.filter((x) => x.name === 'link' && x.parentSpanId === s.spanId);
    assert.equal(links.length, 1, `${name}: the link span of ${id}`);
    assert.deepEqual([attr(links[0]!, 'sluice.peer'), attr(links[0]!, 'sluice.attempts')], ['egress-a', 1]);
    if (OK.includes(n)) {
      const eg = r.otlp.spans.filter((x) => x.name === 'egress' && attr(x, 'sluice.request_id') === id);
      assert.equal(eg.length, 1, `${name}: the egress span of ${id}`);
      assert.equal(eg[0]!.parentSpanId, s.spanId, `${name}: ${id}'s CALL carried its own span`);
      assert.equal(egress.get(id)!.trace_id, r.clientTrace);
    }
  }
  // The stream without traceparent: each message a new trace, named in its lines and spans.
  const traces = new Set<string>();
  for (let n = 1; n <= 2; n++) {
    const id = rid(n, FRESH);
    const l = lineOf(r.ingress, id, `${name} ingress`);
    ingress.set(id, l);
    assert.deepEqual([l.status, l.model, l.method], [0, 'simple', 'ModelInfer']);
    const spans = ingressSpanOf(r, id);
    assert.equal(spans.length, 1, `${name}: one ingress span for ${id}`);
    assert.equal(spans[0]!.parentSpanId ?? '', '', `${name}: ${id} is a root span`);
    assert.equal(l.trace_id, spans[0]!.traceId, `${name}: the line of ${id} names its span's trace`);
    const e = lineOf(r.egress, id, `${name} egress`);
    egress.set(id, e);
    assert.equal(e.trace_id, spans[0]!.traceId, `${name}: the egress line of ${id} is in its trace`);
    traces.add(String(l.trace_id));
  }
  assert.equal(traces.size, 2, `${name}: a trace per message`);
  // The stream that ended at its deadline: its answered message and its unanswered one, each
  // with its line and span; the unanswered one reached the silent model server.
  for (let n = 1; n <= 2; n++) {
    const id = rid(n, LATE);
    const l = lineOf(r.ingress, id, `${name} ingress`);
    ingress.set(id, l);
    if (n === 1) {
      assert.deepEqual([l.status, l.model], [0, 'simple'], `${name}: ${JSON.stringify(l)}`);
    } else {
      assert.ok(l.status === 4 || l.status === 1, `${name}: ${id} ended with the stream: ${JSON.stringify(l)}`);
      assert.equal(l.model, 'silent');
      assert.equal(l.bytes_out, 0);
      assert.equal(l.attempts, 1, `${name}: ${id} went out`);
    }
    assert.equal(ingressSpanOf(r, id).length, 1, `${name}: one ingress span for ${id}`);
    assert.equal(ingressSpanOf(r, id)[0]!.traceId, l.trace_id, `${name}: the line of ${id} names its trace`);
    const e = lineOf(r.egress, id, `${name} egress`);
    egress.set(id, e);
    if (n === 2) assert.ok(e.status === 4 || e.status === 1, `${name}: egress ${JSON.stringify(e)}`);
  }
  return { ingress, egress };
}

// Fields of a line that do not depend on timing, ports or the run's random ids (an egress line's
// `peer` is the ingress's address, a port of each run).
const STABLE = {
  ingress: ['request_id', 'tenant', 'model', 'protocol', 'method', 'status', 'code', 'bytes_in', 'bytes_out', 'peer', 'attempts'],
  egress: ['request_id', 'tenant', 'model', 'protocol', 'method', 'status', 'code', 'bytes_in', 'bytes_out', 'upstream'],
};
// The message a deadline cut: DEADLINE_EXCEEDED or CANCELLED by the race of the stream's end and
// the CALL's own deadline, on either path.
const RACED = new Set([`${LATE}:2`]);
const stable = (l: Line, side: 'ingress' | 'egress'): Record<string, unknown> =>
  Object.fromEntries(STABLE[side].filter((k) => k in l && !(RACED.has(String(l.request_id)) && (k === 'status' || k === 'code'))).map((k) => [k, l[k]]));
const keys = (l: Line): string[] => Object.keys(l).filter((k) => k !== 'time' && k !== 'pid' && k !== 'hostname' && k !== 'node').sort();

describe('ModelStreamInfer access lines and spans, per message', { timeout: 240_000 }, () => {
  test('the engine ingress writes what the TypeScript ingress writes, field by field, one per message', async () => {
    const models = await start({ models: { listen: { host: '127.0.0.1', port: 0 } } }, 'models', {});
    const modelsAddr = models.endpoints.models!;
    const silentAddr = await silentModelServer();
    const engine = await runPath(modelsAddr, silentAddr, {}, 'engine');
    assert.ok(engine.ingress.logs.some((l) => l.listener === 'grpc' && l.path === 'engine'), 'the gRPC ingress is the engine');
    assert.ok(engine.egress.logs.some((l) => l.listener === 'segment' && l.engine === true), 'the egress is the engine');
    const ts = await runPath(modelsAddr, silentAddr, { SLUICE_ENGINE: '0' }, 'ts');
    assert.ok(!ts.ingress.logs.some((l) => l.listener === 'grpc' && l.path === 'engine'), 'SLUICE_ENGINE=0: the TypeScript ingress');

    const tsLines = checkPath(ts, 'typescript');
    const engineLines = checkPath(engine, 'engine');
    for (const side of ['ingress', 'egress'] as const) {
      assert.deepEqual([...engineLines[side].keys()].sort(), [...tsLines[side].keys()].sort(), `${side}: the same requests have lines`);
      for (const [id, t] of tsLines[side]) {
        const e = engineLines[side].get(id)!;
        assert.deepEqual(stable(e, side), stable(t, side), `${side} line of ${id}: engine ${JSON.stringify(e)} vs TypeScript ${JSON.stringify(t)}`);
        assert.deepEqual(keys(e), keys(t), `${side} line of ${id}: the same keys`);
      }
    }
  });
});
