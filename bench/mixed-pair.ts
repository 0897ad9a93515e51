// What bench/mixed.ts and bench/training-cpu.ts share: the sluice pair with both segments
// (front: gRPC and training listeners, dialling back over an inference and a training segment;
// back: in front of the model server, spooling what arrives), and the training job processes
// (bench/mixed-training-job.ts, at nice 19) driven over IPC. Knob:
// SLUICE_BENCH_TRAINING_PRIORITY (training.threadPriority of both nodes).
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSluice, type SluiceProcess } from '../scripts/sluice-child.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

type ChildOptions = Omit<NonNullable<Parameters<typeof startSluice>[1]>, 'name'>;

/**
 * Starts back (egress of `modelsAddress`, both segment listeners) and front (dialling back on
 * both segments, peer "back-training" on the training one). Each started process is pushed to
 * `procs` at once, so the caller's cleanup stops it on any failure.
 */
export async function startMixedSluicePair(
  modelsAddress: string,
  infKey: string,
  trainKey: string,
  spoolDir: string,
  procs: SluiceProcess[],
  startTimeoutMs: number,
  child: (role: 'front' | 'back') => ChildOptions = () => ({}),
): Promise<{ back: SluiceProcess; front: SluiceProcess }> {
  const any = { host: '127.0.0.1', port: 0 };
  // SLUICE_BENCH_TRAINING_PRIORITY: training.threadPriority of both nodes (idle, low, normal;
  // default: the product's default), to see what the training thread's priority costs bulk.
  const priority = process.env.SLUICE_BENCH_TRAINING_PRIORITY;
  const trainingPriority = priority !== undefined && priority !== '' ? { threadPriority: priority } : {};
  const hostPort = (a: string) => ({ host: a.split(':')[0]!, port: Number(a.split(':')[1]) });
  const back = await startSluice(
    {
      node: { name: 'back' },
      listeners: { grpc: any, metrics: any, training: any },
      segments: { inference: { transport: 'tcp', key: infKey, listen: any }, training: { transport: 'tcp', key: trainKey, listen: any } },
      routes: [{ model: '*', upstreams: [{ address: modelsAddress }] }],
      training: { spoolDir: path.join(spoolDir, 'back'), ...trainingPriority },
      log: { level: 'warn' },
    },
    { name: 'back', timeoutMs: startTimeoutMs, ...child('back') },
  );
  procs.push(back);
  const front = await startSluice(
    {
      node: { name: 'front' },
      listeners: { grpc: any, metrics: any, training: any },
      segments: { inference: { transport: 'tcp', key: infKey }, training: { transport: 'tcp', key: trainKey } },
      peers: [
        { name: 'back', segment: 'inference', ...hostPort(back.endpoints.segment!) },
        { name: 'back-training', segment: 'training', ...hostPort(back.endpoints.training!) },
      ],
      routes: [{ model: '*', peers: ['back'] }],
      training: { spoolDir: path.join(spoolDir, 'front'), ...trainingPriority },
      log: { level: 'warn' },
    },
    { name: 'front', timeoutMs: startTimeoutMs, ...child('front') },
  );
  procs.push(front);
  return { back, front };
}

/** A job child process (bench/mixed-training-job.ts) spoken to over IPC. */
export class Job {
  private constructor(
    readonly child: ChildProcess,
    readonly address: string | undefined,
  ) {}

  static async start(role: string, args: string[], tensorBytes: number, startTimeoutMs = 120_000): Promise<Job> {
    // nice 19: the job stands for another machine (its CPU is not the proxy's to share).
    const child = spawn('nice', ['-n', '19', process.execPath, '--import', 'tsx', path.join(here, 'mixed-training-job.ts'), role, ...args], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, MIXED_TENSOR_BYTES: String(tensorBytes) },
    });
    const ready = await new Promise<{ address?: string }>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${role} did not get ready`));
      }, startTimeoutMs);
      child.once('exit', (code) => reject(new Error(`${role} exited with ${code}`)));
      child.on('message', (m: { ready?: boolean; address?: string }) => {
        if (m.ready === true) {
          clearTimeout(timer);
          resolve(m);
        }
      });
    });
    return new Job(child, ready.address);
  }

  private ask<T>(cmd: string, key: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${cmd}`)), 60_000);
      const on = (m: Record<string, unknown>) => {
        if (m[key] === undefined) return;
        clearTimeout(timer);
        this.child.off('message', on);
        resolve(m[key] as T);
      };
      this.child.on('message', on);
      this.child.send({ cmd });
    });
  }

  startBulk(): void {
    this.child.send({ cmd: 'start' });
  }

  async stopBulk(): Promise<void> {
    await this.ask('stop', 'stopped');
  }

  sample(): Promise<{ bytes: number; tensors: number; bad: number }> {
    return this.ask('sample', 'sample');
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await exited;
  }
}

