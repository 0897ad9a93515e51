// TrainingStats: bytes are counted once (a resume adds only what follows its offset), endings by
// state, failures by status, live transfers by state.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TrainingStats, type TransferProgress } from '../../src/telemetry/training-stats.ts';

test('bytes count once across progress, a resume and the end; endings and failures by label', () => {
  const s = new TrainingStats();
  const live = new Map<string, TransferProgress>();
  s.setLiveSource(() => live.values());
  s.begin('outbound', 'a', 0, false);
  live.set('a', { id: 'a', direction: 'outbound', acked: 100, state: 'sending' });
  assert.deepEqual(s.bytes(), { outbound: 100, inbound: 0 });
  assert.deepEqual([...s.active().values()], [{ direction: 'outbound', state: 'sending', n: 1 }]);
  live.set('a', { id: 'a', direction: 'outbound', acked: 250, state: 'sending' });
  assert.equal(s.bytes().outbound, 250, 'scraping twice does not count twice');
  assert.equal(s.bytes().outbound, 250);
  live.delete('a');
  s.end({ id: 'a', direction: 'outbound', acked: 300, state: 'failed' }, 'UNAVAILABLE');
  assert.equal(s.bytes().outbound, 300);
  // The same transfer resumed from offset 300 (the receiver's): only what follows counts.
  s.begin('outbound', 'a', 0, true);
  s.skipTo('outbound', 'a', 300);
  live.set('a', { id: 'a', direction: 'outbound', acked: 350, state: 'sending' });
  assert.equal(s.bytes().outbound, 350);
  live.delete('a');
  s.end({ id: 'a', direction: 'outbound', acked: 400, state: 'completed' });
  assert.equal(s.bytes().outbound, 400);
  assert.deepEqual(s.started, { outbound: 2, inbound: 0 });
  assert.deepEqual(s.resumes, { outbound: 1, inbound: 0 });
  assert.deepEqual([...s.ended.values()].sort((x, y) => x.state.localeCompare(y.state)), [
    { direction: 'outbound', state: 'completed', n: 1 },
    { direction: 'outbound', state: 'failed', n: 1 },
  ]);
  assert.deepEqual([...s.failures.values()], [{ direction: 'outbound', status: 'UNAVAILABLE', n: 1 }]);
  assert.equal(s.active().size, 0);
});
