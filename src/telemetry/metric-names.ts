// Metric names that changed, kept in one place so the registry exports both names for one
// release, docs/operations.md lists them, and the monitoring bundle can be checked against them.
// The native engine's counters are exported through the same registry under the same names.

export interface RenamedMetric {
  /** The name exported until `removedIn` (same type, labels and value as `current`). */
  readonly old: string;
  readonly current: string;
  readonly why: string;
  /** The release that stops exporting `old`. */
  readonly removedIn: string;
}

export const RENAMED_METRICS: readonly RenamedMetric[] = [
  { old: 'sluice_bulk_share', current: 'sluice_bulk_share_ratio', why: 'a 0..1 fraction: ratios end in _ratio', removedIn: '0.3.0' },
  // prom-client's process metrics name these gauges *_total, which Prometheus reserves for counters.
  { old: 'sluice_nodejs_active_resources_total', current: 'sluice_nodejs_active_resources', why: 'a gauge: _total is for counters', removedIn: '0.3.0' },
  { old: 'sluice_nodejs_active_handles_total', current: 'sluice_nodejs_active_handles', why: 'a gauge: _total is for counters', removedIn: '0.3.0' },
  { old: 'sluice_nodejs_active_requests_total', current: 'sluice_nodejs_active_requests', why: 'a gauge: _total is for counters', removedIn: '0.3.0' },
];

/** The old name of a metric still exported under both, if any. */
export function oldNameOf(current: string): string | undefined {
  return RENAMED_METRICS.find((r) => r.current === current)?.old;
}

/** Whether `name` is an old name still exported for one release. */
export function isDeprecatedName(name: string): boolean {
  return RENAMED_METRICS.some((r) => r.old === name);
}
