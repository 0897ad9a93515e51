// The engine verbs link's bookkeeping in C++ (native/engine/verbs_flow.h), on any host: credits
// round-trip between two ends with different windows, more credit than sends outstanding is
// refused, credit messages stay within the peer's spare receives, and under selective
// signalling (random flushes, inline sends, credit messages, a send queue completing in order
// and reporting only signalled requests) the queue never overflows and an idle sender never
// waits on a completion it did not ask for (native/engine/test/verbs_flow_tests.cc).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const BIN = path.resolve(process.env.SLUICE_VERBS_FLOW_TESTS_BIN ?? 'build/Release/engine_verbs_flow_tests');

test('verbs link credits and selective signalling (C++ unit tests)', { skip: existsSync(BIN) ? false : `${BIN} not built` }, () => {
  const r = spawnSync(BIN, [], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  for (const name of ['complete-unknown', 'signal-every-nth', 'credits-round-trip', 'credit-messages-bounded', 'random-flushes']) {
    assert.match(r.stdout, new RegExp(`^ok ${name}$`, 'm'));
  }
});
