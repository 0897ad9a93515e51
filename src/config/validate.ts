// The checks a config must pass beyond its schema, shared by `sluice serve` (through
// SluiceNode.start) and `sluice config check`, so a file that checks clean does not fail at
// start-up: routes name known peers, the parts that run have the segments they need, no two
// listeners share a port, segment keys load, and the training spool directory is writable.
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from './errors.ts';
import type { SluiceConfig } from './schema.ts';
import { loadSegmentKey } from './segment-key.ts';

/** Which parts a config runs (the same decisions SluiceNode makes when it starts them). */
export interface ConfigParts {
  /** The inference ingress: client listeners that forward routes over the inference segment. */
  inferenceIngress: boolean;
  /** The egress: segments.inference.listen set. */
  egress: boolean;
  training: boolean;
}

export function configParts(cfg: SluiceConfig): ConfigParts {
  const clientListeners = cfg.listeners.http !== undefined || cfg.listeners.grpc !== undefined;
  const training = cfg.segments.training !== undefined;
  return {
    // A training-only node serves no inference (its gRPC port: grpc.health.v1 only; TensorTransfer is on listeners.training).
    inferenceIngress: clientListeners && (!training || cfg.routes.some((r) => r.peers.length > 0)),
    egress: cfg.segments.inference?.listen !== undefined,
    training,
  };
}

export interface ValidateOptions {
  /** Directory relative key files are resolved against (the config file's). */
  configDir?: string;
}

/** Throws one ConfigError listing every problem, each led by the path it concerns. */
export function validateConfig(cfg: SluiceConfig, opts: ValidateOptions = {}): void {
  const problems = [...topologyProblems(cfg), ...portProblems(cfg), ...keyProblems(cfg, opts.configDir), ...spoolProblems(cfg)];
  if (problems.length > 0) throw new ConfigError(problems.join('; '));
}

function topologyProblems(cfg: SluiceConfig): string[] {
  const out: string[] = [];
  const parts = configParts(cfg);
  if ((parts.inferenceIngress || parts.egress) && cfg.segments.inference === undefined) {
    out.push('segments.inference: required for the ingress and the egress');
  }
  if (parts.egress && !cfg.routes.some((r) => r.upstreams.length > 0)) {
    out.push('routes: the inference segment listens, but no route has upstreams for it to serve');
  }
  if (parts.inferenceIngress && !cfg.routes.some((r) => r.peers.length > 0)) {
    out.push('routes: the ingress listens, but no route names egress peers');
  }
  const inferencePeers = new Set(cfg.peers.filter((p) => p.segment === 'inference').map((p) => p.name));
  cfg.routes.forEach((r, i) =>
    r.peers.forEach((name, j) => {
      if (!inferencePeers.has(name)) out.push(`routes[${i}].peers[${j}]: peer '${name}' is not in peers (segment inference)`);
    }),
  );
  return out;
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]']);

function portProblems(cfg: SluiceConfig): string[] {
  const bound: { where: string; host: string; port: number }[] = [];
  const add = (where: string, l: { host: string; port: number } | undefined): void => {
    if (l !== undefined && l.port !== 0) bound.push({ where, host: l.host, port: l.port });
  };
  add('listeners.http', cfg.listeners.http);
  add('listeners.grpc', cfg.listeners.grpc);
  add('listeners.metrics', cfg.listeners.metrics);
  add('segments.inference.listen', cfg.segments.inference?.listen);
  add('segments.training.listen', cfg.segments.training?.listen);
  add('models.listen', cfg.models?.listen);
  const out: string[] = [];
  bound.forEach((b, i) => {
    const clash = bound.slice(0, i).find((a) => a.port === b.port && (a.host === b.host || WILDCARD_HOSTS.has(a.host) || WILDCARD_HOSTS.has(b.host)));
    if (clash !== undefined) out.push(`${b.where}.port: ${b.port} is also the port of ${clash.where} (${clash.host})`);
  });
  return out;
}

function keyProblems(cfg: SluiceConfig, configDir: string | undefined): string[] {
  const out: string[] = [];
  for (const name of ['inference', 'training'] as const) {
    const seg = cfg.segments[name];
    if (seg === undefined) continue;
    try {
      loadSegmentKey(seg, name, configDir).fill(0);
    } catch (err) {
      out.push((err as Error).message);
    }
  }
  return out;
}

/** The spool directory (created at start if missing) must be, or be creatable as, a writable directory. */
function spoolProblems(cfg: SluiceConfig): string[] {
  if (cfg.segments.training === undefined) return [];
  const dir = path.resolve(cfg.training.spoolDir);
  let probe = dir;
  for (;;) {
    let isDir: boolean;
    try {
      isDir = statSync(probe).isDirectory();
    } catch {
      const parent = path.dirname(probe);
      if (parent === probe) return [`training.spoolDir: '${cfg.training.spoolDir}' cannot be created`];
      probe = parent;
      continue;
    }
    if (!isDir) return [`training.spoolDir: '${probe}' is not a directory`];
    try {
      accessSync(probe, constants.W_OK | constants.X_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EACCES';
      return [`training.spoolDir: '${probe}' is not writable (${code})${probe === dir ? '' : `, so '${cfg.training.spoolDir}' cannot be created`}`];
    }
    return [];
  }
}
