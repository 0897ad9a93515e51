// Loads and validates a config file. Errors name the path and what was expected,
// e.g. `segments.training.transport: expected "tcp" | "rdma" | "auto"`.
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from './errors.ts';
import { closestMatch } from './levenshtein.ts';
import { configSchema, type SluiceConfig } from './schema.ts';
import { knownKeysAt } from './schema-keys.ts';

export { ConfigError };

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out === '' ? '(root)' : out;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = formatPath(issue.path);
  if (issue.code === 'invalid_value' && 'values' in issue) {
    return `${where}: expected ${issue.values.map((v) => JSON.stringify(v)).join(' | ')}`;
  }
  if (issue.code === 'invalid_type') {
    return `${where}: expected ${issue.expected}`;
  }
  if (issue.code === 'unrecognized_keys') {
    // One line per key, with its own path: `listners: unknown key (did you mean "listeners"?)`.
    const known = knownKeysAt(configSchema, issue.path);
    return issue.keys
      .map((k) => {
        const near = closestMatch(k, known);
        const hint = near !== undefined ? `did you mean "${near}"?` : known.length > 0 ? `known keys: ${known.join(', ')}` : '';
        return `${formatPath([...issue.path, k])}: unknown key${hint !== '' ? ` (${hint})` : ''}`;
      })
      .join('; ');
  }
  return `${where}: ${issue.message}`;
}

export function parseConfig(value: unknown, source = 'config'): SluiceConfig {
  const result = configSchema.safeParse(value ?? {});
  if (!result.success) {
    const lines = result.error.issues.map(describeIssue);
    throw new ConfigError(`${source}: ${lines.join('; ')}`);
  }
  return result.data;
}

export function parseConfigText(text: string, source = 'config'): SluiceConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    const msg = err instanceof YAMLParseError ? err.message.split('\n')[0] : String(err);
    throw new ConfigError(`${source}: invalid YAML: ${msg}`);
  }
  return parseConfig(doc, source);
}

export function loadConfigFile(file: string): SluiceConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    throw new ConfigError(`${file}: cannot read config file (${code})`);
  }
  return parseConfigText(text, file);
}
