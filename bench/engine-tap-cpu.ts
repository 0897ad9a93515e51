// What the engine's tensor tap costs per call, measured in CPU time (schedstat, robust on a shared
// machine): one node in this process (engine ingress and egress, the identity model in a second
// node), `calls` FP32 ModelInfer calls of `elements` floats, 8 in flight, with security.threats
// at sampleRate 0 (tap idle), then 1 (every call copied into the ring and drained into the
// detectors). Reports the run time per call of the engine's loop thread (`sluice-infer`: the copy)
// and of the JS main thread (the drain, the detectors, and this script's client).
//   node --import tsx bench/engine-tap-cpu.ts [calls] [elements]   (SLUICE_TAP_DETECTORS=0: extraction off too)
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseConfig } from '../src/config/load.ts';
import { SluiceNode } from '../src/node/sluice-node.ts';
import { defaultTransports } from '../src/node/transports.ts';
import { Logging } from '../src/telemetry/logger.ts';
import { KserveClient } from '../test/helpers/kserve-client.ts';
import { closedPort } from '../test/helpers/sluice-process.ts';

const calls = Number(process.argv[2] ?? 2000);
const elements = Number(process.argv[3] ?? 1024);
/** SLUICE_TAP_DETECTORS=0: the detectors do nothing with the samples (the tap's own cost: copy, wake-ups, drain). */
const detectors = process.env.SLUICE_TAP_DETECTORS !== '0';

/** Run time (ns) per thread name of this process. */
function threadNs(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const name = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      const key = tid === String(process.pid) ? 'main' : name;
      const ns = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      out.set(key, (out.get(key) ?? 0) + ns);
    } catch {
      // the thread ended
    }
  }
  return out;
}

async function run(sampleRate: number): Promise<{ engineUs: number; mainUs: number }> {
  const logging = new Logging({ level: 'silent', node: 'tap-cpu' });
  const models = new SluiceNode({ config: parseConfig({ models: { listen: { host: '127.0.0.1', port: 0 } }, log: { level: 'silent' } }), logger: logging.component('models'), transports: defaultTransports });
  await models.start();
  const seg = await closedPort();
  const node = new SluiceNode({
    config: parseConfig({
      node: { name: 'tap-cpu' },
      listeners: { grpc: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key: randomBytes(32).toString('hex'), listen: { host: '127.0.0.1', port: seg } } },
      peers: [{ name: 'self', segment: 'inference', host: '127.0.0.1', port: seg }],
      routes: [{ model: '*', peers: ['self'], upstreams: [{ address: models.endpoints.models! }] }],
      log: { level: 'silent' },
      security: { threats: { enabled: true, sampleRate, adversarial: { enabled: false }, extraction: { enabled: detectors, maxQueriesPerMinute: 1e9 } } },
    }),
    logger: logging.component('node'),
    transports: defaultTransports,
  });
  await node.start();
  const client = new KserveClient(node.endpoints.grpc!);
  const values = Float32Array.from({ length: elements }, (_, i) => Math.sin(i));
  const req = { modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, elements] }], rawInputContents: [Buffer.from(values.buffer)] };
  for (let i = 0; i < 200; i++) await client.infer(req); // warm-up
  const before = threadNs();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next++ < calls) await client.infer(req);
    }),
  );
  const after = threadNs();
  const per = (k: string) => ((after.get(k) ?? 0) - (before.get(k) ?? 0)) / calls / 1000;
  const fast = node.engineIngressCalls?.fast ?? 0;
  client.raw.close();
  await node.stop(0);
  await models.stop(0);
  if (fast < calls) throw new Error(`only ${fast} calls on the engine's fast path`);
  return { engineUs: per('sluice-infer'), mainUs: per('main') };
}

console.log(`load average ${loadavg()[0]!.toFixed(1)}; ${calls} calls of ${elements} FP32, 8 in flight; detectors ${detectors ? 'on (extraction)' : 'off'}`);
for (const rate of (process.env.SLUICE_TAP_ORDER ?? "0,1,0,1").split(",").map(Number)) {
  const r = await run(rate);
  console.log(`sampleRate ${rate}: sluice-infer threads ${r.engineUs.toFixed(1)} us/call, JS main thread ${r.mainUs.toFixed(1)} us/call`);
}
