// AES-256-GCM seal throughput: NativeAead (one reused context, caller buffers) vs
// NodeCryptoAead (createCipheriv per message) in the same run, with `openssl speed` as the
// ceiling. Each round runs every implementation (in alternating order) and then `openssl speed`,
// so a busy spell on the machine hits every column; the table shows medians over the rounds.
//
// Clock: `openssl speed` divides by the CPU time it used (unless given -elapsed), so by default
// every column is bytes per CPU-second: the CPU time of each task's whole timed run (per-sample
// CPU time is tick-grained on Linux, too coarse for one sample). On a shared machine this stays
// comparable while other work steals the cores. --wall uses the wall clock instead: medians of
// tinybench's per-sample latencies, and openssl with -elapsed. Both are written to the JSON.
// Options: --quick (shorter rounds), --wall.
import { spawnSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { Bench, hrtimeNow } from 'tinybench';
import { KEY_BYTES, NONCE_BYTES, TAG_BYTES, type Aead } from '../src/crypto/aead.ts';
import { NativeAead } from '../src/crypto/native-aead.ts';
import { NodeCryptoAead } from '../src/crypto/node-aead.ts';
import { formatBytes, formatTable, median, writeResults } from './report.ts';

const SIZES = [4 * 1024, 64 * 1024, 1024 * 1024, 16 * 1024 * 1024];
// Each timed call seals at least this much, so timer overhead stays out of small-message numbers.
const BYTES_PER_SAMPLE = 256 * 1024;
const TASKS = ['addon', 'node', 'nodeRaw'] as const;
type TaskName = (typeof TASKS)[number];
type Clock = 'cpu' | 'wall';

/** GB/s (1e9 bytes per second) of each column under one clock. */
interface Speeds {
  addon: number;
  node: number;
  /** createCipheriv without the copy into a caller buffer: what node:crypto costs by itself. */
  nodeRaw: number;
  openssl: number | null;
}

interface SizeResult {
  size: number;
  cpu: Speeds;
  wall: Speeds;
  /** Per-round values behind the medians. */
  rounds: { cpu: Record<TaskName, number[]>; opensslCpu: number[]; opensslWall: number[] };
}

/** One seal per call, a fresh nonce per message (a counter, as links use). */
function sealer(aead: Aead, size: number): () => void {
  const nonce = Buffer.alloc(NONCE_BYTES);
  const aad = randomBytes(32);
  const plaintext = randomBytes(size);
  const out = Buffer.alloc(size + TAG_BYTES);
  let counter = 0;
  return () => {
    nonce.writeUInt32BE(counter++ >>> 0, 8);
    aead.seal(nonce, aad, plaintext, out);
  };
}

function rawNodeSealer(key: Buffer, size: number): () => void {
  const nonce = Buffer.alloc(NONCE_BYTES);
  const aad = randomBytes(32);
  const plaintext = randomBytes(size);
  let counter = 0;
  return () => {
    nonce.writeUInt32BE(counter++ >>> 0, 8);
    const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad);
    cipher.update(plaintext);
    cipher.final();
    cipher.getAuthTag();
  };
}

/** Milliseconds of CPU time (user + system) used by this process. */
function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

/** `openssl speed` for one size, in GB/s; null when its output cannot be read. */
function opensslSpeed(size: number, seconds: number, clock: Clock): number | null {
  const args = ['speed', ...(clock === 'wall' ? ['-elapsed'] : []), '-evp', 'aes-256-gcm'];
  args.push('-bytes', String(size), '-seconds', String(seconds));
  const r = spawnSync('openssl', args, { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  if (r.error !== undefined || r.status !== 0) return null;
  // "The 'numbers' are in 1000s of bytes per second processed." then "AES-256-GCM  3380000.00k".
  const m = /^AES-256-GCM\s+([\d.]+)k\s*$/m.exec(r.stdout);
  return m?.[1] === undefined ? null : (Number(m[1]) * 1000) / 1e9;
}

function opensslAvailable(): boolean {
  const r = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  return r.error === undefined && r.status === 0;
}

function medianOrNull(values: readonly number[]): number | null {
  return values.length > 0 ? median(values) : null;
}

export async function run(args: readonly string[]): Promise<void> {
  const quick = args.includes('--quick');
  const clock: Clock = args.includes('--wall') ? 'wall' : 'cpu';
  const rounds = quick ? 2 : 3;
  const roundMs = quick ? 200 : 600;
  const opensslSeconds = quick ? 1 : 2;
  const haveOpenssl = opensslAvailable();
  if (!haveOpenssl) console.log('openssl binary not found: the openssl column is n/a (Debian: apt-get install openssl)');

  const key = randomBytes(KEY_BYTES);
  const addon = new NativeAead(key);
  const node = new NodeCryptoAead(key);
  const results: SizeResult[] = [];
  for (const size of SIZES) {
    const batch = Math.max(1, Math.floor(BYTES_PER_SAMPLE / size));
    const seal: Record<TaskName, () => void> = {
      addon: sealer(addon, size),
      node: sealer(node, size),
      nodeRaw: rawNodeSealer(key, size),
    };
    const wallMsPerMessage: Record<TaskName, number[]> = { addon: [], node: [], nodeRaw: [] };
    const cpuGbps: Record<TaskName, number[]> = { addon: [], node: [], nodeRaw: [] };
    const opensslCpu: number[] = [];
    const opensslWall: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? TASKS : [...TASKS].reverse();
      const bench = new Bench({ time: roundMs, iterations: 5, warmupTime: roundMs / 4, warmupIterations: 2, now: hrtimeNow });
      for (const name of order) {
        let messages = 0;
        let cpuStart = 0;
        bench.add(
          name,
          () => {
            for (let i = 0; i < batch; i++) seal[name]();
            messages += batch;
          },
          {
            beforeAll: (mode) => {
              messages = 0;
              cpuStart = mode === 'run' ? cpuMs() : 0;
            },
            afterAll: (mode) => {
              if (mode === 'run') cpuGbps[name].push((messages * size) / ((cpuMs() - cpuStart) / 1000) / 1e9);
            },
          },
        );
      }
      bench.runSync();
      for (const task of bench.tasks) {
        const result = task.result;
        if (result === undefined || result.error !== undefined) throw result?.error ?? new Error(`${task.name}: no result`);
        wallMsPerMessage[task.name as TaskName].push(...result.latency.samples.map((ms) => ms / batch));
      }
      if (haveOpenssl) {
        const speed = opensslSpeed(size, opensslSeconds, clock);
        if (speed !== null) (clock === 'cpu' ? opensslCpu : opensslWall).push(speed);
      }
    }
    const wallGbps = (name: TaskName): number => size / (median(wallMsPerMessage[name]) / 1000) / 1e9;
    results.push({
      size,
      cpu: {
        addon: median(cpuGbps.addon),
        node: median(cpuGbps.node),
        nodeRaw: median(cpuGbps.nodeRaw),
        openssl: medianOrNull(opensslCpu),
      },
      wall: { addon: wallGbps('addon'), node: wallGbps('node'), nodeRaw: wallGbps('nodeRaw'), openssl: medianOrNull(opensslWall) },
      rounds: { cpu: cpuGbps, opensslCpu, opensslWall },
    });
    console.log(`  ${formatBytes(size)} done`);
  }
  addon.destroy();
  node.destroy();

  const f2 = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(2));
  const ratio = (a: number, b: number | null): string => (b === null ? 'n/a' : `${(a / b).toFixed(2)}x`);
  const unit = clock === 'cpu' ? 'CPU-second' : 'second of wall clock';
  console.log(
    `\nAES-256-GCM seal, GB/s (1e9 B per ${unit}), medians. addon = NativeAead; node:crypto = NodeCryptoAead` +
      ` (createCipheriv per message, copied into the caller's buffer); node raw = createCipheriv without the copy.\n`,
  );
  console.log(
    formatTable(
      ['size', 'addon', 'node:crypto', 'openssl', 'addon/node', 'addon/openssl', 'node raw'],
      results.map((r) => {
        const s = r[clock];
        return [formatBytes(r.size), f2(s.addon), f2(s.node), f2(s.openssl), ratio(s.addon, s.node), ratio(s.addon, s.openssl), f2(s.nodeRaw)];
      }),
    ),
  );
  const at64k = results.find((r) => r.size === 64 * 1024)?.[clock];
  if (at64k !== undefined) {
    console.log(
      `\n64 KiB: addon ${ratio(at64k.addon, at64k.node)} node:crypto (target >= 1.3x),` +
        ` ${ratio(at64k.addon, at64k.openssl)} openssl speed (target >= 0.9x)`,
    );
  }
  const file = writeResults('crypto', {
    clock,
    rounds,
    roundMs,
    opensslCommand: haveOpenssl
      ? `openssl speed ${clock === 'wall' ? '-elapsed ' : ''}-evp aes-256-gcm -bytes SIZE -seconds ${opensslSeconds}`
      : null,
    sizes: results,
  });
  console.log(`results written to ${file}`);
}
