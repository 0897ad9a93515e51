// deploy/monitoring against a real sluice: every metric name a PromQL expression of the Grafana
// dashboard or the PrometheusRules uses is one a running `sluice serve` exports (scraped from
// its /metrics; histogram _bucket/_sum/_count understood), or a recording rule defined there.
// The objects validate as YAML/JSON of the expected kinds.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { closedPort, startSluice, type SluiceProcess } from '../../scripts/sluice-child.ts';
import { parsePromText } from '../helpers/prom-text.ts';
import { isDeprecatedName, RENAMED_METRICS } from '../../src/telemetry/metric-names.ts';

const dir = path.resolve(import.meta.dirname, '..', '..', 'deploy', 'monitoring');
const rulesDocs = parseAllDocuments(readFileSync(path.join(dir, 'prometheus-rules.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; spec: { groups: { rules: { record?: string; alert?: string; expr: string }[] }[] } });
const monitorDocs = parseAllDocuments(readFileSync(path.join(dir, 'service-monitor.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; spec: Record<string, unknown> });
const dashboard = JSON.parse(readFileSync(path.join(dir, 'grafana-dashboard.json'), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };

const rules = rulesDocs.flatMap((d) => d.spec.groups.flatMap((g) => g.rules));
const recorded = new Set(rules.flatMap((r) => (r.record !== undefined ? [r.record] : [])));
const expressions = [...rules.map((r) => ({ where: r.alert ?? r.record ?? '?', expr: r.expr })), ...dashboard.panels.flatMap((p) => p.targets.map((t) => ({ where: p.title, expr: t.expr })))];

/** Metric names in a PromQL expression (sluice's: sluice_*, and recording rules sluice:*). */
function metricNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  return [...withoutStrings.matchAll(/\b(sluice[_:][a-zA-Z0-9_:]*)/g)].map((m) => m[1]!);
}

/** Whether `name` is exported: as is, or as a histogram's / summary's series. */
function exported(name: string, types: Map<string, string>): boolean {
  if (types.has(name)) return true;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  return m !== null && (types.get(m[1]!) === 'histogram' || (m[2] !== 'bucket' && types.get(m[1]!) === 'summary'));
}

let node: SluiceProcess | undefined;
after(async () => {
  await node?.stop();
});

test('the bundle has the expected objects', () => {
  assert.deepEqual(rulesDocs.map((d) => d.kind), ['PrometheusRule']);
  assert.deepEqual(monitorDocs.map((d) => d.kind).sort(), ['PodMonitor', 'Service', 'ServiceMonitor']);
  const alerts = rules.flatMap((r) => (r.alert !== undefined ? [r.alert] : []));
  for (const a of ['SluiceInferenceP99OverTarget', 'SluiceLinksDown', 'SluiceAuditFailure', 'SluiceCryptoRejections']) assert.ok(alerts.includes(a), a);
  const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join(' | ');
  for (const w of ['p50', 'p99', 'overhead', 'bulk share', 'links', 'rejections', 'transfers']) assert.ok(titles.includes(w), `a dashboard panel on ${w}`);
});

test('the name extraction sees names, and a name sluice does not export is caught', () => {
  assert.deepEqual(metricNames('sum(rate(sluice_a_total{x="sluice_not_a_metric"}[5m])) / sluice:rec'), ['sluice_a_total', 'sluice:rec']);
  const types = new Map([['sluice_h_seconds', 'histogram']]);
  assert.ok(exported('sluice_h_seconds_bucket', types));
  assert.ok(!exported('sluice_nope_total', types));
});

test('every metric an expression names is exported by a running sluice', { timeout: 120_000 }, async () => {
  const segmentPort = await closedPort();
  const modelsPort = await closedPort();
  node = await startSluice(
    {
      node: { name: 'monitoring-check' },
      listeners: { http: { host: '127.0.0.1', port: 0 }, metrics: { host: '127.0.0.1', port: 0 } },
      models: { listen: { host: '127.0.0.1', port: modelsPort } },
      segments: { inference: { transport: 'tcp', key: randomBytes(32).toString('base64'), listen: { host: '127.0.0.1', port: segmentPort } } },
      peers: [{ name: 'self', segment: 'inference', host: '127.0.0.1', port: segmentPort }],
      routes: [{ model: '*', peers: ['self'], upstreams: [{ address: `127.0.0.1:${modelsPort}` }] }],
    },
    { name: 'monitoring' },
  );
  const res = await fetch(`http://${node.endpoints.metrics}/metrics`);
  assert.equal(res.status, 200);
  const { types } = parsePromText(await res.text());
  for (const r of RENAMED_METRICS) assert.ok(types.has(r.old) && types.has(r.current), `${r.old} and ${r.current} both exported for one release`);
  for (const [name, type] of types) {
    if (isDeprecatedName(name)) continue;
    assert.ok(!(type === 'gauge' && name.endsWith('_total')), `gauge ${name} must not end in _total`);
  }
  const missing: string[] = [];
  for (const { where, expr } of expressions) {
    const names = metricNames(expr);
    if (!recorded.has(where)) assert.ok(names.length > 0, `${where}: names a sluice metric`);
    for (const n of names) {
      if (n.includes(':')) {
        if (!recorded.has(n)) missing.push(`${where}: recording rule ${n} is not defined`);
      } else if (!exported(n, types)) missing.push(`${where}: ${n}`);
    }
  }
  assert.deepEqual(missing, [], 'names a real sluice does not export');
});
