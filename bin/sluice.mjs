#!/usr/bin/env -S node --single-threaded-gc
// V8 flags: src/node/v8-flags.ts (why, and where else they are set).
// The CLI is TypeScript run through tsx, so the installed bin needs no build step.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/main.ts');
