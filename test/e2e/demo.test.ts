// `sluice demo` (what `npm start` runs): no config file, prints its endpoints and a curl line
// that works as printed; SIGINT lets a request in flight finish, then exits 0.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { CLI, ROOT } from '../../scripts/sluice-child.ts';

test('demo: the printed curl line serves simple; graceful SIGINT', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'demo', '--http-port', '0', '--grpc-port', '0', '--segment-port', '0', '--models-port', '0', '--metrics-port', '0'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`demo did not print its banner: ${out} ${err}`)), 30_000);
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('Ctrl-C stops.')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    assert.match(out, /gRPC\s+127\.0\.0\.1:\d+/);
    assert.match(out, /inference segment\s+127\.0\.0\.1:\d+ {3}\(tcp, AES-256-GCM/);
    const curl = out.split('\n').find((l) => l.trim().startsWith('curl '))!.trim();
    const r = spawnSync('sh', ['-c', curl], { encoding: 'utf8', timeout: 15_000 });
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { model_name: string; outputs: { name: string; data: number[] }[] };
    assert.equal(res.model_name, 'simple');
    assert.deepEqual(res.outputs[0]!.data, Array.from({ length: 16 }, (_, i) => i + 2));
    assert.deepEqual(res.outputs[1]!.data, Array.from({ length: 16 }, (_, i) => i));

    // A request that takes 600 ms is in flight when SIGINT arrives: it still gets its answer.
    const http = /http:\/\/(127\.0\.0\.1:\d+)\/v2\/models\/simple\/infer/.exec(curl)![1];
    const slow = fetch(`http://${http}/v2/models/identity/infer`, {
      method: 'POST',
      body: JSON.stringify({ parameters: { delay_ms: 600 }, inputs: [{ name: 'INPUT0', datatype: 'INT16', shape: [2], data: [3, -4] }] }),
    });
    await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGINT');
    const answer = await slow;
    assert.equal(answer.status, 200);
    assert.deepEqual(((await answer.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data, [3, -4]);
    assert.equal(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test('serve without a config says what to do, exit 1', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'serve'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, SLUICE_CONFIG: '' } });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /sluice serve: no config: pass --config FILE or set SLUICE_CONFIG/);
});

test('the HTTP ingress refuses to run on the uWebSockets.js JS fallback', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'demo', '--http-port', '0', '--grpc-port', '0', '--segment-port', '0', '--models-port', '0'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, UWS_USE_FALLBACK: '1' },
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /sluice demo: uWebSockets\.js did not load its native build .* because UWS_USE_FALLBACK is set/);
});
