// The Kubernetes manifests (deploy/k8s) parse, validate against the Kubernetes API schemas, and
// agree with sluice: embedded configs pass the config schema, ports are the design's, probes hit
// the ops listener's real paths, drain timing fits the grace period, keys and networks line up.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { parseAllDocuments } from 'yaml';
import { parseConfigText } from '../../src/config/load.ts';
import type { SluiceConfig } from '../../src/config/schema.ts';
import { OPS_PATHS } from '../../src/telemetry/metrics-server.ts';
import { DESIGN_PORTS } from '../helpers/design-ports.ts';

/** docs/design.md: 8003 is sluice.v1.TensorTransfer's own listener. */

const dir = path.resolve(import.meta.dirname, '..', '..', 'deploy', 'k8s');

interface Doc {
  file: string;
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  resources?: string[];
}

function load(file: string): Doc[] {
  // YAML 1.1 as Kubernetes reads it (sigs.k8s.io/yaml): 0440 is octal there.
  const docs = parseAllDocuments(readFileSync(path.join(dir, file), 'utf8'), { version: '1.1' });
  return docs.map((d) => {
    assert.deepEqual(d.errors, [], `${file}: YAML errors`);
    return { ...(d.toJS() as Doc), file };
  });
}

const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();
const all = files.flatMap(load);
const byKind = (kind: string): Doc[] => all.filter((d) => d.kind === kind);
const find = (kind: string, name: string): Doc => {
  const d = all.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(d, `${kind}/${name} exists`);
  return d;
};

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment as never,
  'batch/v1/Job': Job as never,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy as never,
  'v1/ConfigMap': ConfigMap as never,
  'v1/Namespace': Namespace as never,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim as never,
  'v1/Secret': Secret as never,
  'v1/Service': Service as never,
};

interface Workload {
  doc: Doc;
  pod: IPodSpec;
  annotations: Record<string, string>;
  labels: Record<string, string>;
  sluice: IContainer;
  sidecarIsInit: boolean;
  config: SluiceConfig;
}

function workloads(): Workload[] {
  return [...byKind('Deployment'), ...byKind('Job')].map((doc) => {
    const template = (doc.spec as { template: { metadata: { annotations?: Record<string, string>; labels?: Record<string, string> }; spec: IPodSpec } }).template;
    const pod = template.spec;
    const init = (pod.initContainers ?? []).find((c) => c.name === 'sluice');
    const main = pod.containers.find((c) => c.name === 'sluice');
    const sluice = (init ?? main)!;
    assert.ok(sluice, `${doc.metadata.name} has a sluice container`);
    const cfgVolume = pod.volumes!.find((v) => v.name === sluice.volumeMounts!.find((m) => m.mountPath === '/etc/sluice/config')!.name)!;
    const cm = find('ConfigMap', cfgVolume.configMap!.name!);
    const config = parseConfigText(cm.data!['sluice.yaml']!, `${cm.file}:${cm.metadata.name}`);
    return { doc, pod, annotations: template.metadata.annotations ?? {}, labels: template.metadata.labels ?? {}, sluice, sidecarIsInit: init !== undefined, config };
  });
}

test('every manifest parses and every core object validates against the Kubernetes API schema', () => {
  assert.ok(files.includes('kustomization.yaml'));
  for (const d of all) {
    if (d.kind === 'Kustomization') {
      for (const r of d.resources ?? []) assert.ok(files.includes(r), `kustomization lists ${r}, which exists`);
      continue;
    }
    const model = MODELS[`${d.apiVersion}/${d.kind}`];
    if (model === undefined) {
      assert.ok(['NetworkAttachmentDefinition', 'MultiNetworkPolicy'].includes(d.kind), `${d.file}: unexpected kind ${d.apiVersion} ${d.kind}`);
      continue;
    }
    const { file, ...obj } = d;
    assert.doesNotThrow(() => new model(obj as never).validate(), `${file}: ${d.kind}/${d.metadata.name}`);
  }
  const applied = all.find((d) => d.kind === 'Kustomization')!.resources!;
  assert.ok(!applied.includes('secrets.example.yaml'), 'placeholder secrets are not applied');
});

test('the schema check catches a broken manifest (so the test above can fail)', () => {
  const d = find('Deployment', 'sluice-gateway');
  const { file: _f, ...obj } = structuredClone(d);
  (obj.spec as { template: { spec: { containers: { ports: { containerPort: unknown }[] }[] } } }).template.spec.containers[0]!.ports[0]!.containerPort = 'eight thousand';
  assert.throws(() => new Deployment(obj as never).validate(), /containerPort must be integer/);
});

test('embedded sluice configs validate against the config schema', () => {
  const configs = byKind('ConfigMap').filter((c) => c.data?.['sluice.yaml'] !== undefined);
  assert.equal(configs.length, 3);
  for (const c of configs) parseConfigText(c.data!['sluice.yaml']!, `${c.file}:${c.metadata.name}`);
  assert.throws(() => parseConfigText(configs[0]!.data!['sluice.yaml']!.replace('transport: rdma', 'transport: udp'), 'mutated'), /expected "tcp" \| "rdma" \| "auto"/);
});

test('container ports are the design ports and match each config', () => {
  for (const w of workloads()) {
    const ports = new Map((w.sluice.ports ?? []).map((p) => [p.name!, p.containerPort]));
    const expected = new Map<string, number>();
    const l = w.config.listeners;
    if (l.http && l.http.host !== '127.0.0.1') expected.set('http', l.http.port);
    if (l.grpc) expected.set('grpc', l.grpc.port);
    if (l.metrics) expected.set('metrics', l.metrics.port);
    if (l.training) expected.set('training', l.training.port);
    if (w.config.segments.inference?.listen) expected.set('seg-inference', w.config.segments.inference.listen.port);
    if (w.config.segments.training?.listen) expected.set('seg-training', w.config.segments.training.listen.port);
    assert.deepEqual(Object.fromEntries(ports), Object.fromEntries(expected), `${w.doc.metadata.name}: container ports = configured listeners`);
    const design: Record<string, number> = { http: DESIGN_PORTS.http, grpc: DESIGN_PORTS.grpc, metrics: DESIGN_PORTS.metrics, training: DESIGN_PORTS.training, 'seg-inference': DESIGN_PORTS.inferenceSegment, 'seg-training': DESIGN_PORTS.trainingSegment };
    for (const [name, port] of ports) assert.equal(port, design[name], `${w.doc.metadata.name}: ${name} is on the design port`);
    assert.equal(l.metrics?.host, '0.0.0.0', `${w.doc.metadata.name}: the ops listener is reachable by kubelet and Prometheus`);
    assert.equal(w.annotations['prometheus.io/port'], String(l.metrics?.port));
    assert.equal(w.annotations['prometheus.io/path'], OPS_PATHS.metrics);
    // Containers of a pod share one network namespace: no port twice.
    const allPorts = [...(w.pod.initContainers ?? []), ...w.pod.containers].flatMap((c) => (c.ports ?? []).map((p) => p.containerPort));
    assert.equal(new Set(allPorts).size, allPorts.length, `${w.doc.metadata.name}: no port used twice in the pod`);
  }
});

test('probes hit the ops listener\'s real endpoints, and the drain fits the grace period', () => {
  for (const w of workloads()) {
    const c = w.sluice;
    const metricsPort = w.config.listeners.metrics!.port;
    const portOf = (p: string | number): number => (typeof p === 'number' ? p : c.ports!.find((x) => x.name === p)!.containerPort);
    for (const [probe, pathExpected] of [
      ['startupProbe', OPS_PATHS.live],
      ['livenessProbe', OPS_PATHS.live],
      ['readinessProbe', OPS_PATHS.ready],
    ] as const) {
      const p = c[probe];
      assert.ok(p?.httpGet, `${w.doc.metadata.name}: ${probe} is an HTTP probe`);
      assert.equal(p.httpGet.path, pathExpected, `${w.doc.metadata.name}: ${probe} path`);
      assert.equal(portOf(p.httpGet.port as string | number), metricsPort, `${w.doc.metadata.name}: ${probe} port`);
    }
    const preStop = (c.lifecycle?.preStop as { sleep?: { seconds: number } } | undefined)?.sleep?.seconds ?? 0;
    const lc = w.config.lifecycle;
    const needed = preStop + (lc.drainDelayMs + lc.drainGraceMs + lc.closeTimeoutMs) / 1000;
    const grace = w.pod.terminationGracePeriodSeconds ?? 30;
    assert.ok(grace > needed, `${w.doc.metadata.name}: terminationGracePeriodSeconds ${grace} covers preStop + drain (${needed} s)`);
    for (const other of w.pod.containers.filter((x) => x.name !== 'sluice')) {
      const otherSleep = (other.lifecycle?.preStop as { sleep?: { seconds: number } } | undefined)?.sleep?.seconds;
      if (!w.sidecarIsInit && otherSleep !== undefined) {
        assert.ok(otherSleep >= preStop + lc.drainGraceMs / 1000, `${w.doc.metadata.name}: ${other.name} stays up while sluice drains`);
        assert.ok(grace > otherSleep, `${w.doc.metadata.name}: grace period covers ${other.name}'s preStop`);
      }
    }
  }
});

test('a Job\'s sluice is a native sidecar so the Job can complete', () => {
  const job = workloads().find((w) => w.doc.kind === 'Job')!;
  assert.ok(job.sidecarIsInit);
  assert.equal(job.sluice.restartPolicy, 'Always');
  assert.ok(job.sluice.startupProbe, 'the job container waits for sluice to be up');
});

test('keys and certificates come from Secrets, a pod gets only its segments\' keys', () => {
  const secrets = new Map(load('secrets.example.yaml').map((s) => [s.metadata.name, s]));
  for (const w of workloads()) {
    const mounts = w.sluice.volumeMounts ?? [];
    for (const seg of ['inference', 'training'] as const) {
      const s = w.config.segments[seg];
      if (s === undefined) continue;
      assert.ok(s.keyFile !== undefined && s.key === undefined, `${w.doc.metadata.name}: ${seg} key comes from a file, not inline`);
      const mount = mounts.find((m) => s.keyFile!.startsWith(`${m.mountPath}/`));
      assert.ok(mount, `${w.doc.metadata.name}: ${s.keyFile} is on a mounted volume`);
      const vol = w.pod.volumes!.find((v) => v.name === mount.name)!;
      assert.ok(vol.secret, `${w.doc.metadata.name}: ${s.keyFile} comes from a Secret`);
      const fileName = s.keyFile!.slice(mount.mountPath.length + 1);
      const item = vol.secret.items?.find((i) => i.path === fileName);
      assert.ok(item, `${w.doc.metadata.name}: the Secret projects ${fileName}`);
      assert.ok(secrets.get(vol.secret.secretName!)?.stringData?.[item.key] !== undefined, `${vol.secret.secretName} has key ${item.key}`);
    }
    for (const v of w.pod.volumes!.filter((x) => x.secret)) {
      assert.ok(secrets.has(v.secret!.secretName!), `${v.secret!.secretName} is described in secrets.example.yaml`);
      assert.equal(v.secret!.defaultMode, 0o440, 'secret files readable by the pod group only');
      const projected = (v.secret!.items ?? []).map((i) => i.key).filter((k) => k.endsWith('.key') && /inference|training/.test(k));
      for (const k of projected) assert.ok(w.config.segments[k.replace('.key', '') as 'inference' | 'training'] !== undefined, `${w.doc.metadata.name} gets ${k} only if it is on that segment`);
    }
  }
});

test('TLS material comes from a mounted Secret and the audit log sits on a persistent volume', () => {
  const secrets = new Map(load('secrets.example.yaml').map((s) => [s.metadata.name, s]));
  let withTls = 0;
  for (const w of workloads()) {
    const sec = w.config.security;
    const mounts = w.sluice.volumeMounts ?? [];
    const volumeOf = (file: string) => {
      const m = mounts.find((x) => file.startsWith(`${x.mountPath}/`));
      assert.ok(m, `${w.doc.metadata.name}: ${file} is on a mounted volume`);
      return { mount: m, volume: w.pod.volumes!.find((v) => v.name === m.name)! };
    };
    if (sec.tls.enabled) {
      withTls++;
      const files = [sec.tls.certFile, sec.tls.keyFile, sec.tls.clientCerts.caFile, sec.tls.clientCerts.allowlistFile].filter((f): f is string => f !== undefined);
      assert.equal(files.length, 4);
      for (const f of files) {
        const { mount, volume } = volumeOf(f);
        assert.ok(volume.secret, `${f} comes from a Secret`);
        const key = f.slice(mount.mountPath.length + 1);
        assert.ok(secrets.get(volume.secret.secretName!)?.stringData?.[key] !== undefined, `${volume.secret.secretName} has ${key}`);
      }
    }
    if (sec.audit.enabled) {
      for (const f of [sec.audit.path, sec.audit.adminPath]) {
        const { mount, volume } = volumeOf(f);
        assert.ok(volume.persistentVolumeClaim, `${f} is on a persistent volume`);
        assert.notEqual(mount.readOnly, true);
        find('PersistentVolumeClaim', volume.persistentVolumeClaim.claimName);
      }
    }
  }
  assert.ok(withTls >= 1, 'the client-facing gateway terminates TLS');
});

interface Attachment {
  name: string;
  interface: string;
  ips: string[];
}

test('segments are separate secondary networks with RDMA resources, and peers point at real addresses', () => {
  const allNads = new Map(byKind('NetworkAttachmentDefinition').map((n) => [n.metadata.name, n]));
  assert.deepEqual([...allNads.keys()].sort(), ['sluice-inference', 'sluice-training', 'sluice-training-jobs']);
  // Listeners have fixed addresses (static IPAM); pods that only dial out draw from a pool.
  const nads = new Map([...allNads].filter(([name]) => name !== 'sluice-training-jobs'));
  const pool = JSON.parse((allNads.get('sluice-training-jobs')!.spec as { config: string }).config) as { master: string; ipam: { type: string; range: string; range_start: string } };
  assert.equal(pool.ipam.type, 'whereabouts');
  const masters = new Set<string>();
  const subnets = new Set<string>();
  for (const n of nads.values()) {
    const cni = JSON.parse((n.spec as { config: string }).config) as { name: string; type: string; master: string; ipam: { type: string }; capabilities?: { ips?: boolean } };
    assert.equal(cni.name, n.metadata.name);
    assert.equal(cni.ipam.type, 'static');
    assert.equal(cni.capabilities?.ips, true, 'pods choose their address');
    if (n.metadata.name === 'sluice-training') assert.equal(pool.master, cni.master, 'the job pool is on the training NIC');
    masters.add(cni.master);
    assert.match(n.metadata.annotations?.['k8s.v1.cni.cncf.io/resourceName'] ?? '', /^rdma\//);
  }
  assert.equal(masters.size, 2, 'each segment on its own NIC');

  const attachmentsOf = (w: Workload): Attachment[] => JSON.parse(w.annotations['k8s.v1.cni.cncf.io/networks'] ?? '[]') as Attachment[];
  const ws = workloads();
  for (const w of ws) {
    const atts = attachmentsOf(w);
    const segs = (['inference', 'training'] as const).filter((s) => w.config.segments[s] !== undefined);
    // A pod without a listener on a segment takes a pooled address there.
    const netOf = (seg: 'inference' | 'training'): string => (seg === 'training' && w.config.segments.training?.listen === undefined ? 'sluice-training-jobs' : `sluice-${seg}`);
    assert.deepEqual(atts.map((a) => a.name).sort(), segs.map(netOf).sort(), `${w.doc.metadata.name}: attached to exactly its segments' networks`);
    if (w.doc.kind === 'Job') {
      assert.ok(atts.every((a) => a.ips === undefined), `${w.doc.metadata.name}: a Job pins no static address`);
      assert.equal((w.doc.spec as { completionMode?: string }).completionMode, 'Indexed');
    }
    for (const seg of segs) {
      const s = w.config.segments[seg]!;
      const att = atts.find((a) => a.name === netOf(seg))!;
      if (att.ips === undefined) {
        assert.equal(s.listen, undefined, `${w.doc.metadata.name}: a ${seg} listener needs a fixed address`);
        assert.equal(s.device, att.interface);
        continue;
      }
      subnets.add(att.ips[0]!.split('.').slice(0, 3).join('.'));
      assert.equal(s.device, att.interface, `${w.doc.metadata.name}: the ${seg} segment uses the ${att.interface} interface`);
      if (s.listen) assert.equal(`${s.listen.host}/24`, att.ips[0], `${w.doc.metadata.name}: ${seg} listener binds its segment address`);
      if (s.transport !== 'tcp') {
        const resource = nads.get(`sluice-${seg}`)!.metadata.annotations!['k8s.v1.cni.cncf.io/resourceName']!;
        assert.equal(w.sluice.resources?.limits?.[resource], '1', `${w.doc.metadata.name}: requests ${resource}`);
      }
    }
    // Every peer is some pod's segment listener, at that pod's address on that segment.
    for (const peer of w.config.peers) {
      const target = ws.find((o) => o.config.node.name === peer.name);
      assert.ok(target, `${w.doc.metadata.name}: peer ${peer.name} is a workload here`);
      const listen = target.config.segments[peer.segment]?.listen;
      assert.ok(listen, `${peer.name} listens on the ${peer.segment} segment`);
      assert.deepEqual([peer.host, peer.port], [listen.host, listen.port]);
      assert.ok(attachmentsOf(w).some((a) => a.name === `sluice-${peer.segment}` || (peer.segment === 'training' && a.name === 'sluice-training-jobs')), `${w.doc.metadata.name} is on the ${peer.segment} network to reach ${peer.name}`);
    }
    for (const r of w.config.routes) for (const p of r.peers) assert.ok(w.config.peers.some((x) => x.name === p), `route peer ${p} is configured`);
  }
  assert.equal(subnets.size, 2, 'the segments use different subnets');
});

test('NetworkPolicy opens client listeners only to clients, and metrics only to monitoring', () => {
  const gw = workloads().find((w) => w.config.listeners.http !== undefined)!;
  const policies = byKind('NetworkPolicy');
  const selects = (p: Doc, labels: Record<string, string>): boolean => {
    const sel = (p.spec as { podSelector: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values: string[] }[] } }).podSelector;
    return (
      Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v) &&
      (sel.matchExpressions ?? []).every((e) => e.operator === 'In' && e.values.includes(labels[e.key] ?? ''))
    );
  };
  for (const w of workloads()) {
    const mine = policies.filter((p) => selects(p, w.labels));
    assert.ok(mine.length >= 1, `${w.doc.metadata.name} is covered by a NetworkPolicy`);
    const rules = mine.flatMap((p) => (p.spec as { ingress: { from: Record<string, unknown>[]; ports: { port: number }[] }[] }).ingress);
    const openPorts = new Set(rules.flatMap((r) => r.ports.map((p) => p.port)));
    const clientPorts = [w.config.listeners.http, w.config.listeners.grpc].filter((l) => l && l.host === '0.0.0.0').map((l) => l!.port);
    assert.deepEqual([...openPorts].sort(), [...clientPorts, w.config.listeners.metrics!.port].sort(), `${w.doc.metadata.name}: only its client listeners and metrics are open`);
    for (const r of rules) {
      assert.ok(r.from.length > 0, 'no rule is open to everyone');
      if (r.ports.some((p) => p.port === w.config.listeners.metrics!.port)) assert.deepEqual(r.ports.map((p) => p.port), [w.config.listeners.metrics!.port]);
    }
  }
  assert.ok(gw.config.listeners.http);
  const svc = find('Service', 'sluice-gateway');
  const svcPorts = (svc.spec as { ports: { port: number }[] }).ports.map((p) => p.port).sort();
  assert.deepEqual(svcPorts, [DESIGN_PORTS.http, DESIGN_PORTS.grpc]);
  // Segment ports are guarded on their own networks.
  const mnp = byKind('MultiNetworkPolicy');
  for (const seg of ['inference', 'training'] as const) {
    const p = mnp.find((x) => x.metadata.annotations?.['k8s.v1.cni.cncf.io/policy-for'] === `sluice/sluice-${seg}`);
    assert.ok(p, `a MultiNetworkPolicy guards the ${seg} network`);
    const port = seg === 'inference' ? DESIGN_PORTS.inferenceSegment : DESIGN_PORTS.trainingSegment;
    assert.deepEqual((p.spec as { ingress: { ports: { port: number }[] }[] }).ingress.flatMap((r) => r.ports.map((x) => x.port)), [port]);
  }
});

test('containers run as non-root with a read-only root filesystem and writable /tmp', () => {
  for (const w of workloads()) {
    assert.equal(w.pod.securityContext?.runAsNonRoot, true);
    assert.equal(w.pod.securityContext?.runAsUser, 10001, 'the image\'s user');
    assert.equal(w.sluice.securityContext?.readOnlyRootFilesystem, true);
    assert.equal(w.sluice.securityContext?.allowPrivilegeEscalation, false);
    assert.ok(w.sluice.volumeMounts!.some((m) => m.mountPath === '/tmp'));
    assert.deepEqual(w.sluice.args?.slice(0, 2), ['serve', '--config']);
  }
});

/** Every path a sluice process writes, derived from its config (what `serve` creates or appends). */
function writtenPaths(config: SluiceConfig): { path: string; what: string }[] {
  const out: { path: string; what: string }[] = [{ path: tmpdir(), what: 'temporary files (the mTLS front\'s unix socket)' }];
  if (config.segments.training !== undefined) out.push({ path: config.training.spoolDir, what: 'training.spoolDir' });
  const sec = config.security;
  if (sec.audit.enabled) {
    out.push({ path: sec.audit.path, what: 'security.audit.path' });
    out.push({ path: sec.audit.adminPath, what: 'security.audit.adminPath' });
  }
  if (sec.apiKeys.enabled) out.push({ path: sec.apiKeys.store, what: 'security.apiKeys.store (sluice keys writes it)' });
  return out;
}

test('every path sluice writes (from the config in its ConfigMap) is on a writable volume, not the read-only root', () => {
  for (const w of workloads()) {
    assert.equal(w.sluice.securityContext?.readOnlyRootFilesystem, true);
    const volumes = new Map((w.pod.volumes ?? []).map((v) => [v.name, v]));
    for (const { path: p, what } of writtenPaths(w.config)) {
      assert.ok(path.isAbsolute(p), `${w.doc.metadata.name}: ${what} (${p}) is absolute (a relative path would land in the read-only working directory)`);
      const mount = (w.sluice.volumeMounts ?? [])
        .filter((m) => p === m.mountPath || p.startsWith(`${m.mountPath.replace(/\/$/, '')}/`))
        .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
      assert.ok(mount, `${w.doc.metadata.name}: ${what} (${p}) is under a volume mount`);
      assert.notEqual(mount.readOnly, true, `${w.doc.metadata.name}: ${what} (${p}) is on a writable mount`);
      const v = volumes.get(mount.name);
      assert.ok(v, `${w.doc.metadata.name}: volume ${mount.name} exists`);
      assert.ok(v.emptyDir !== undefined || v.persistentVolumeClaim !== undefined, `${w.doc.metadata.name}: ${what} is on an emptyDir or a PVC (not a ConfigMap/Secret)`);
      if (v.persistentVolumeClaim !== undefined) {
        assert.notEqual(v.persistentVolumeClaim.readOnly, true);
        find('PersistentVolumeClaim', v.persistentVolumeClaim.claimName);
      }
    }
  }
});

test('the written-paths check fails for a spool on the read-only root', () => {
  const w = workloads().find((x) => x.config.segments.training !== undefined)!;
  const broken = { ...w.config, training: { ...w.config.training, spoolDir: '/var/spool/sluice' } };
  const mounts = w.sluice.volumeMounts ?? [];
  assert.ok(writtenPaths(broken).some(({ path: p }) => !mounts.some((m) => p.startsWith(`${m.mountPath}/`) || p === m.mountPath)));
});

test('every PersistentVolumeClaim a pod names is defined, and images carry their registry path', () => {
  for (const d of [...byKind('Deployment'), ...byKind('Job')]) {
    const pod = (d.spec as { template: { spec: IPodSpec } }).template.spec;
    for (const v of pod.volumes ?? []) if (v.persistentVolumeClaim) find('PersistentVolumeClaim', v.persistentVolumeClaim.claimName);
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      if (/triton/i.test(c.image ?? '')) assert.match(c.image!, /^nvcr\.io\/nvidia\/tritonserver:[\w.-]+$/, `${d.metadata.name}/${c.name}: Triton's full registry path`);
    }
  }
});

test("a training job dials its sidecar's training listener (TensorTransfer is served on 8003 alone, never on listeners.grpc)", () => {
  const jobs = workloads().filter((w) => w.config.segments.training !== undefined && w.doc.kind === 'Job');
  assert.ok(jobs.length > 0, 'a training job is in the manifests');
  for (const w of jobs) {
    const training = w.config.listeners.training;
    assert.ok(training, `${w.doc.metadata.name}: listeners.training is set`);
    assert.equal(training.port, DESIGN_PORTS.training);
    const addresses = w.pod.containers.filter((c) => c.name !== 'sluice').flatMap((c) => (c.env ?? []).filter((e) => e.name === 'SLUICE_ADDRESS').map((e) => e.value));
    assert.ok(addresses.length > 0, `${w.doc.metadata.name}: the job container is told where its sidecar is`);
    for (const a of addresses) assert.equal(a, `127.0.0.1:${training.port}`);
    if (w.config.listeners.grpc !== undefined) assert.ok(!addresses.includes(`127.0.0.1:${w.config.listeners.grpc.port}`));
  }
});
