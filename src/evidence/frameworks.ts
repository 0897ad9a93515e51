// Which audit event types (actions) evidence which controls, per framework. The table is the
// documented mapping of docs/security.md ("Evidence packs"); an export for one framework keeps
// only the entries that map to at least one of its controls.

export const FRAMEWORKS = ['soc2', 'eu-ai-act-art10', 'nist-ai-rmf', 'iso42001'] as const;
export type Framework = (typeof FRAMEWORKS)[number];

export function isFramework(v: string): v is Framework {
  return (FRAMEWORKS as readonly string[]).includes(v);
}

export interface Control {
  id: string;
  title: string;
  /** Action patterns: exact (`keys.rotate`) or a prefix ending in `.` + `*` (`pii.*`). */
  actions: readonly string[];
}

const ACCESS = ['auth.failed', 'policy.denied', 'tls.*', 'jwks.*'];
const KEYS = ['keys.*'];
const AUDIT = ['audit.*'];
const PII = ['pii.*'];
const USE = ['infer.request', 'train.request', 'admin.request'];

export const CONTROLS: Readonly<Record<Framework, readonly Control[]>> = {
  soc2: [
    { id: 'CC6.1', title: 'Logical access security: authentication and authorization of access', actions: [...ACCESS, ...USE] },
    { id: 'CC6.2', title: 'Access credentials issued, rotated and removed', actions: KEYS },
    { id: 'CC6.7', title: 'Transmission and disclosure of information restricted', actions: [...PII, 'tls.*'] },
    { id: 'CC7.2', title: 'System components monitored for anomalies and security events', actions: [...AUDIT, 'auth.failed', 'policy.denied', 'pii.flagged'] },
    { id: 'CC7.3', title: 'Security events evaluated (break-glass and privileged actions)', actions: ['pii.reveal', 'admin.request', 'evidence.export'] },
    { id: 'C1.1', title: 'Confidential information identified and protected', actions: PII },
  ],
  'eu-ai-act-art10': [
    { id: 'Art.10(2)', title: 'Data governance and management practices for training, validation and testing data', actions: ['train.request', 'evidence.export'] },
    { id: 'Art.10(3)', title: 'Data sets relevant and free of errors: provenance of the data used', actions: ['train.request', 'infer.request'] },
    { id: 'Art.10(5)', title: 'Special categories of personal data: safeguards, access limits, pseudonymisation', actions: [...PII, 'policy.denied', 'auth.failed', ...KEYS] },
  ],
  'nist-ai-rmf': [
    { id: 'GOVERN 1.5', title: 'Ongoing monitoring and periodic review of the risk management process', actions: [...AUDIT, 'evidence.export'] },
    { id: 'MAP 4.1', title: 'Approaches for mapping legal risks, including privacy, are documented', actions: PII },
    { id: 'MEASURE 2.7', title: 'AI system security and resilience are evaluated and documented', actions: [...ACCESS, ...KEYS] },
    { id: 'MEASURE 2.10', title: 'Privacy risk of the AI system is examined and documented', actions: PII },
    { id: 'MANAGE 4.1', title: 'Post-deployment monitoring plans are implemented', actions: [...USE, ...AUDIT] },
  ],
  iso42001: [
    { id: 'A.6.2.6', title: 'AI system operation and monitoring', actions: [...USE, ...ACCESS] },
    { id: 'A.6.2.8', title: 'AI system recording of event logs', actions: [...AUDIT, 'evidence.export'] },
    { id: 'A.7.2', title: 'Data for development and enhancement of AI systems', actions: ['train.request'] },
    { id: 'A.7.4', title: 'Quality of data for AI systems (including personal data handling)', actions: PII },
    { id: 'A.9.2', title: 'Processes for responsible use of AI systems (access and privileged use)', actions: [...KEYS, 'pii.reveal', 'admin.request'] },
  ],
};

function matches(pattern: string, action: string): boolean {
  return pattern.endsWith('.*') ? action.startsWith(pattern.slice(0, -1)) : pattern === action;
}

/** Controls of `framework` (or of every framework, as "framework:id") an action evidences. */
export function controlsFor(action: string, framework: Framework | null): string[] {
  const fws = framework === null ? FRAMEWORKS : [framework];
  const out: string[] = [];
  for (const fw of fws) {
    for (const c of CONTROLS[fw]) if (c.actions.some((p) => matches(p, action))) out.push(framework === null ? `${fw}:${c.id}` : c.id);
  }
  return out;
}
