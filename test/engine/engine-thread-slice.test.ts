// The engine's loop thread asks the kernel for a short EEVDF slice (engine-thread-slice.ts), so
// that when a call's bytes wake it it preempts the thread running instead of waiting out that
// thread's slice. Checked against the kernel's own view (/proc/self/task/<tid>/sched), the
// knob's parsing, and the node's report of it (sluice_thread_* metrics).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { DEFAULT_ENGINE_SLICE_US, engineSliceUs } from '../../src/engine/engine-thread-slice.ts';
import { NativeEngine } from '../../src/engine/native-engine.ts';
import { parseConfig } from '../../src/config/load.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { closedPort } from '../helpers/sluice-process.ts';
import { parsePromText } from '../helpers/prom-text.ts';

/** se.slice of a thread of this process (ns), or undefined when the kernel does not show one. */
function kernelSliceNs(tid: number): number | undefined {
  const file = `/proc/self/task/${tid}/sched`;
  if (!existsSync(file)) return undefined;
  const m = /^se\.slice\s*:\s*(\d+)/m.exec(readFileSync(file, 'utf8'));
  return m === null ? undefined : Number(m[1]);
}

function threadName(tid: number): string {
  return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
}

test('the engine thread runs with the short slice; 0 keeps the kernel default', () => {
  const short = new NativeEngine('sluice-infer', DEFAULT_ENGINE_SLICE_US);
  const plain = new NativeEngine('sluice-infer', 0);
  try {
    const s = short.threadSchedule;
    const p = plain.threadSchedule;
    // The tids are the loop threads' own (not the JS thread's).
    assert.notEqual(s.tid, process.pid);
    assert.equal(threadName(s.tid), 'sluice-infer');
    assert.equal(threadName(p.tid), 'sluice-infer');
    assert.equal(s.policy, 'other');
    assert.equal(s.requestedSliceUs, DEFAULT_ENGINE_SLICE_US);
    assert.equal(p.requestedSliceUs, undefined);
    const kernelShort = kernelSliceNs(s.tid);
    if (kernelShort === undefined || s.sliceUs === 0) {
      // A kernel before EEVDF custom slices (6.12): nothing to hold it to but the request.
      return;
    }
    assert.equal(s.error, undefined);
    assert.equal(s.sliceUs, DEFAULT_ENGINE_SLICE_US);
    assert.equal(kernelShort, DEFAULT_ENGINE_SLICE_US * 1000);
    // The other engine (and the JS thread) keep the kernel's default slice, longer than ours.
    assert.equal(kernelSliceNs(p.tid), p.sliceUs * 1000);
    assert.ok(p.sliceUs > DEFAULT_ENGINE_SLICE_US, `default slice ${p.sliceUs} us`);
    assert.equal(kernelSliceNs(process.pid), p.sliceUs * 1000);
  } finally {
    short.stop();
    plain.stop();
  }
});

test('SLUICE_ENGINE_SLICE_US: default, 0, bounds', () => {
  assert.equal(engineSliceUs({}), DEFAULT_ENGINE_SLICE_US);
  assert.equal(engineSliceUs({ SLUICE_ENGINE_SLICE_US: '' }), DEFAULT_ENGINE_SLICE_US);
  assert.equal(engineSliceUs({ SLUICE_ENGINE_SLICE_US: '0' }), 0);
  assert.equal(engineSliceUs({ SLUICE_ENGINE_SLICE_US: '250' }), 250);
  for (const bad of ['50', '100001', '1.5', 'fast', '-100']) {
    assert.throws(() => engineSliceUs({ SLUICE_ENGINE_SLICE_US: bad }), /SLUICE_ENGINE_SLICE_US/, bad);
  }
});

test('a node reports its engine thread in sluice_thread_sched_policy / sluice_thread_nice', { timeout: 60_000 }, async () => {
  const node = new SluiceNode({
    config: parseConfig({
      listeners: { metrics: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key: randomBytes(32).toString('hex'), listen: { host: '127.0.0.1', port: 0 } } },
      routes: [{ model: '*', upstreams: [{ address: `127.0.0.1:${await closedPort()}` }] }],
      log: { level: 'silent' },
    }),
    logger: new Logging({ level: 'silent', node: 'slice' }).component('n'),
    transports: defaultTransports,
  });
  await node.start();
  try {
    assert.equal(node.egressOnEngine, true);
    const s = parsePromText(await (await fetch(`http://${node.endpoints.metrics}/metrics`)).text());
    const policy = s.samples.filter((x) => x.name === 'sluice_thread_sched_policy' && x.labels.thread === 'sluice-infer/egress');
    assert.deepEqual(policy.map((x) => x.labels.policy), ['other']);
    assert.equal(s.samples.find((x) => x.name === 'sluice_thread_nice' && x.labels.thread === 'sluice-infer/egress')?.value, 0);
  } finally {
    await node.stop(0);
  }
});
