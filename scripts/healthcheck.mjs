#!/usr/bin/env node
// Container HEALTHCHECK: exits 0 when sluice's ops listener reports live. Plain JavaScript so it
// starts fast. SLUICE_HEALTHCHECK_URL overrides the address (default the ops listener's /livez);
// SLUICE_HEALTHCHECK_TIMEOUT_MS the time allowed for the answer (default 2500, inside the
// image's 3 s HEALTHCHECK timeout).
const url = process.env.SLUICE_HEALTHCHECK_URL ?? 'http://127.0.0.1:8002/livez';
const timeoutMs = Number(process.env.SLUICE_HEALTHCHECK_TIMEOUT_MS ?? 2500);
const ac = new AbortController();
const timer = setTimeout(() => ac.abort(), Number.isFinite(timeoutMs) && timeoutMs > 0 ? timeoutMs : 2500);
try {
  const res = await fetch(url, { signal: ac.signal });
  process.exitCode = res.status === 200 ? 0 : 1;
  if (res.status !== 200) process.stderr.write(`sluice healthcheck: ${url}: HTTP ${res.status} ${(await res.text()).trim()}\n`);
} catch (err) {
  process.stderr.write(`sluice healthcheck: ${url}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
} finally {
  clearTimeout(timer);
}
