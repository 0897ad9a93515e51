// No container engine runs here, so the image is checked without building it: the Dockerfile is
// linted and parsed, its stages, user, ports and health check are held against the design, and
// the file set the runtime stage copies is shown to be enough to run sluice (docs/deploy.md).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';
import { parseConfigText } from '../../src/config/load.ts';
import { HealthModel } from '../../src/telemetry/health.ts';
import { SluiceMetrics } from '../../src/telemetry/metrics.ts';
import { MetricsServer } from '../../src/telemetry/metrics-server.ts';
import { DESIGN_PORTS } from '../helpers/design-ports.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const text = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
const dockerfile = DockerfileParser.parse(text);

interface Stage {
  image: string;
  name: string | null;
  instructions: Instruction[];
}

function stages(): Stage[] {
  const out: Stage[] = [];
  for (const ins of dockerfile.getInstructions()) {
    if (ins.getKeyword() === 'FROM') {
      const args = ins.getExpandedArguments().map((a) => a.getValue());
      out.push({ image: args[0]!, name: args[1]?.toUpperCase() === 'AS' ? args[2]! : null, instructions: [] });
    } else if (out.length > 0) out[out.length - 1]!.instructions.push(ins);
  }
  return out;
}

/** The text after the keyword (flags included) of every `keyword` instruction in a stage. */
const words = (s: Stage, keyword: string): string[] =>
  s.instructions
    .filter((i) => i.getKeyword() === keyword)
    .map((i) => i.getTextContent().replace(/\\\n/g, ' ').slice(keyword.length).trim());

/** Source paths of a stage's COPY instructions (flags dropped, destination dropped). */
const copySources = (s: Stage): string[] =>
  words(s, 'COPY').flatMap((c) => {
    const parts = c.split(/\s+/).filter((p) => !p.startsWith('--'));
    return parts.slice(0, -1);
  });

/** `NODE_VERSION` and friends, from the global ARGs before the first FROM. */
function resolveArgs(image: string): string {
  let out = image;
  for (const arg of dockerfile.getInitialARGs()) {
    const prop = arg.getProperty();
    if (prop !== null) out = out.replaceAll(`\${${prop.getName()}}`, prop.getValue() ?? '');
  }
  return out;
}

test('the Dockerfile lints clean', () => {
  const problems = validate(text).filter((d) => d.severity === 1 || d.severity === 2);
  assert.deepEqual(problems.map((d) => `${d.range.start.line + 1}: ${d.message}`), []);
});

test('a build stage with the toolchain and rdma-core headers, a slim runtime stage without them', () => {
  const [build, runtime, ...rest] = stages();
  assert.equal(rest.length, 0);
  assert.equal(resolveArgs(build!.image), 'node:20-bookworm');
  assert.equal(build!.name, 'build');
  const buildRuns = words(build!, 'RUN').join('\n');
  for (const pkg of ['build-essential', 'python3', 'libibverbs-dev', 'rdma-core']) assert.match(buildRuns, new RegExp(`\\b${pkg}\\b`), `build stage installs ${pkg}`);
  assert.match(buildRuns, /npm ci\b/);
  assert.match(buildRuns, /tsc --noEmit/);
  assert.match(buildRuns, /npm prune --omit=dev/);

  assert.equal(resolveArgs(runtime!.image), 'node:20-bookworm-slim');
  const runtimeRuns = words(runtime!, 'RUN').join('\n');
  for (const pkg of ['libibverbs1', 'ibverbs-providers']) assert.match(runtimeRuns, new RegExp(`\\b${pkg}\\b`));
  for (const pkg of ['build-essential', 'python3', '-dev\\b', 'rdma-core', 'npm ci']) assert.doesNotMatch(runtimeRuns, new RegExp(pkg), `runtime stage has no ${pkg}`);
  for (const c of words(runtime!, 'COPY')) assert.match(c, /^--from=build\b/, 'the runtime stage copies only build output');
});

test('the runtime runs as a numeric non-root user, exposes the design ports and checks its health', () => {
  const runtime = stages().at(-1)!;
  const users = words(runtime, 'USER');
  assert.equal(users.length, 1);
  const [uid, gid] = users[0]!.split(':').map(Number);
  assert.ok(Number.isInteger(uid) && uid! > 0 && Number.isInteger(gid) && gid! > 0, `USER ${users[0]} is numeric and not root`);
  assert.match(words(runtime, 'RUN').join('\n'), new RegExp(`useradd [^\\n]*--uid ${uid}\\b`), 'the user exists in the image');

  const exposed = words(runtime, 'EXPOSE').flatMap((e) => e.split(/\s+/)).map(Number).sort((a, b) => a - b);
  assert.deepEqual(exposed, [...DESIGN_PORTS.all].sort((a, b) => a - b));

  const hc = runtime.instructions.filter((i) => i.getKeyword() === 'HEALTHCHECK');
  assert.equal(hc.length, 1);
  const hcText = hc[0]!.getArgumentsContent()!;
  assert.match(hcText, /CMD \["node", "\/app\/scripts\/healthcheck\.mjs"\]/);
  assert.ok(words(runtime, 'COPY').some((c) => /scripts\/healthcheck\.mjs/.test(c)));
  assert.deepEqual(words(runtime, 'STOPSIGNAL'), ['SIGTERM']);
  assert.deepEqual(words(runtime, 'ENTRYPOINT'), ['["node", "--single-threaded-gc", "/app/bin/sluice.mjs"]']);
  assert.deepEqual(words(runtime, 'CMD'), ['["serve"]']);
});

test('every build-context path the Dockerfile copies exists and is not excluded by .dockerignore', () => {
  const ignore = readFileSync(path.join(root, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  assert.equal(ignore[0], '*', '.dockerignore starts from "exclude everything"');
  const allowed = ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
  const [build] = stages();
  const sources = copySources(build!);
  assert.ok(sources.length >= 6);
  for (const src of sources) {
    const rel = src.replace(/\/$/, '');
    assert.ok(existsSync(path.join(root, rel)), `COPY source ${src} exists`);
    assert.ok(allowed.includes(rel), `COPY source ${src} is re-included by .dockerignore`);
  }
});

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

// Usage examples in comments ("import { connect } from 'sluice'") are not imports.
function stripComments(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
}

test('the runtime file set is enough: src imports stay inside the image and need only production dependencies', () => {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const runtime = stages().at(-1)!;
  const copied = copySources(runtime).map((c) => c.replace(/^\/app\//, '').replace(/\/$/, ''));
  for (const d of ['src', 'proto', 'bin', 'node_modules', 'build/Release/sluice_native.node', 'package.json']) assert.ok(copied.includes(d), `runtime copies ${d}`);
  const builtins = new Set(builtinModules);
  const importRe = /(?:^|\s)(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  const files = [...walk(path.join(root, 'src')), path.join(root, 'bin', 'sluice.mjs')].filter((f) => /\.(ts|mjs)$/.test(f));
  for (const f of files) {
    for (const m of stripComments(readFileSync(f, 'utf8')).matchAll(importRe)) {
      const spec = (m[1] ?? m[2])!;
      // Type-only imports are erased before run time (e.g. `sluice bench` names bench/'s types
      // and loads bench/ only when it runs, with a clear error where it is absent).
      if (/^\s*(?:import|export)\s+type\s/.test(m[0])) continue;
      if (spec.startsWith('.')) {
        const target = path.relative(root, path.resolve(path.dirname(f), spec));
        assert.ok(copied.some((c) => target === c || target.startsWith(`${c}/`)), `${path.relative(root, f)} imports ${spec}, outside the image`);
        continue;
      }
      if (spec.startsWith('node:') || builtins.has(spec)) continue;
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
      assert.ok(name in pkg.dependencies, `${path.relative(root, f)} imports ${name}, which npm prune --omit=dev removes`);
    }
  }
  // Files the code opens at run time by path. Some belong to the source checkout only and are
  // optional: the code checks they exist and says clearly when they do not.
  const optional: Record<string, string> = { 'bench/main.ts': 'sluice bench: the suites ship with the source checkout, not the image' };
  for (const f of files) {
    const src = readFileSync(f, 'utf8');
    for (const m of src.matchAll(/new URL\(\s*'([^']+)'\s*,\s*import\.meta\.url\s*\)/g)) {
      const target = path.relative(root, path.resolve(path.dirname(f), m[1]!));
      if (target in optional) {
        assert.match(src, /existsSync\(/, `${path.relative(root, f)} opens the optional ${target} without checking it exists`);
        continue;
      }
      assert.ok(copied.some((c) => target === c || target.startsWith(`${c}/`)), `${path.relative(root, f)} opens ${m[1]}, outside the image`);
    }
  }
});

test('the image ports agree with the config defaults', () => {
  const cfg = parseConfigText('listeners: { http: {}, grpc: {}, metrics: {} }');
  assert.deepEqual([cfg.listeners.http!.port, cfg.listeners.grpc!.port, cfg.listeners.metrics!.port], [DESIGN_PORTS.http, DESIGN_PORTS.grpc, DESIGN_PORTS.metrics]);
});

test('the HEALTHCHECK script passes on a live node and fails otherwise', async () => {
  const health = new HealthModel();
  const metrics = new SluiceMetrics({ processMetrics: false });
  const server = new MetricsServer({ host: '127.0.0.1', port: 0, metrics, health });
  const { port } = await server.listen();
  // Asynchronous: the server answering the check lives in this process. A generous answer
  // timeout: on a loaded machine the child's first fetch can take seconds.
  const run = (url: string): Promise<number> =>
    new Promise((resolve) => {
      const child = execFile(process.execPath, [path.join(root, 'scripts', 'healthcheck.mjs')], { env: { ...process.env, SLUICE_HEALTHCHECK_URL: url, SLUICE_HEALTHCHECK_TIMEOUT_MS: '8000' }, timeout: 10_000 });
      child.on('exit', (code) => resolve(code ?? -1));
    });
  try {
    assert.equal(await run(`http://127.0.0.1:${port}/livez`), 0);
    health.markFatal('test');
    assert.equal(await run(`http://127.0.0.1:${port}/livez`), 1);
  } finally {
    await server.close();
  }
  assert.equal(await run(`http://127.0.0.1:${port}/livez`), 1, 'nothing listening');
});
