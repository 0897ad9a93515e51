#!/usr/bin/env node
// Fails when src/ has a circular import (relative imports only).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src');
const files = [];
(function walk(dir) {
  for (const n of readdirSync(dir)) {
    const p = path.join(dir, n);
    if (statSync(p).isDirectory()) walk(p);
    else if (n.endsWith('.ts')) files.push(p);
  }
})(root);
const re = /^\s*(?:import|export)\s[^'"]*?from\s+['"](\.{1,2}\/[^'"]+)['"]/gm;
const graph = new Map();
for (const f of files) {
  const src = readFileSync(f, 'utf8');
  const deps = [];
  for (const m of src.matchAll(re)) {
    // Type-only imports vanish at run time and cannot form a cycle that breaks loading.
    if (/^\s*(?:import|export)\s+type\s/.test(m[0])) continue;
    deps.push(path.resolve(path.dirname(f), m[1]));
  }
  graph.set(f, deps);
}
const state = new Map();
const stack = [];
let bad = false;
function visit(f) {
  state.set(f, 1);
  stack.push(f);
  for (const d of graph.get(f) ?? []) {
    if (!graph.has(d)) continue;
    if (state.get(d) === 1) {
      const cyc = stack.slice(stack.indexOf(d)).concat(d).map((p) => path.relative(root, p));
      console.error(`circular import: ${cyc.join(' -> ')}`);
      bad = true;
    } else if (!state.has(d)) visit(d);
  }
  stack.pop();
  state.set(f, 2);
}
for (const f of graph.keys()) if (!state.has(f)) visit(f);
if (bad) process.exit(1);
console.log(`no circular imports in ${files.length} files`);
