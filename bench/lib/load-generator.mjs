#!/usr/bin/env node

import { readFileSync } from 'node:fs';
// A load generator meant to run in its own process (and core): keeps `connections * pipelining`
// requests in flight through an undici Pool for `durationMs` after a warm-up, and prints one JSON line:
// {requests, answered, seconds, rps, statuses, errors, latencyMs: {p50, p99, max}}; `answered` includes
// the warm-up.
//
// Usage: node bench/lib/load-generator.mjs '<json>' | <file.json>, where json is
// {url, method, paths: [..] (cycled), headers, body? | bodies?, connections, pipelining, durationMs, warmupMs}
import { Pool } from 'undici';

// The configuration as JSON, or the path of a file holding it (per-path bodies outgrow argv).
const arg = process.argv[2];
const cfg = JSON.parse(arg.trimStart().startsWith('{') ? arg : readFileSync(arg, 'utf8'));
const pool = new Pool(cfg.url, { connections: cfg.connections, pipelining: cfg.pipelining });
const inFlight = cfg.connections * cfg.pipelining;
const paths = cfg.paths;
// `bodies[i]` goes with `paths[i]` (a PUT that must repeat the path's id); else `body` with every path.
const bodies = cfg.bodies
  ? cfg.bodies.map((b) => JSON.stringify(b))
  : paths.map(() => (cfg.body === undefined ? undefined : JSON.stringify(cfg.body)));
const headers =
  bodies[0] === undefined ? cfg.headers : { ...cfg.headers, 'content-type': 'application/json' };

let measuring = false;
let stop = false;
let requests = 0;
/** Every answered request, warm-up included (the server's CPU time covers them all). */
let answered = 0;
let errors = 0;
let next = 0;
const statuses = {};
// Latency samples in a fixed array: percentiles without unbounded growth.
const samples = new Float64Array(200_000);
let sampled = 0;

async function loop() {
  while (!stop) {
    const i = next++ % paths.length;
    const path = paths[i];
    const body = bodies[i];
    const t0 = performance.now();
    try {
      const res = await pool.request({ path, method: cfg.method, headers, body });
      await res.body.dump();
      answered += 1;
      if (measuring) {
        requests += 1;
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        if (sampled < samples.length) samples[sampled++] = performance.now() - t0;
      }
    } catch {
      if (measuring) errors += 1;
    }
  }
}

const loops = Array.from({ length: inFlight }, () => loop());
await new Promise((r) => setTimeout(r, cfg.warmupMs));
measuring = true;
const start = performance.now();
await new Promise((r) => setTimeout(r, cfg.durationMs));
measuring = false;
const seconds = (performance.now() - start) / 1000;
stop = true;
await Promise.all(loops);
await pool.close();

const sorted = Array.from(samples.subarray(0, sampled)).sort((a, b) => a - b);
const pct = (p) =>
  sorted.length ? Number(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))].toFixed(2)) : 0;
process.stdout.write(
  `${JSON.stringify({
    requests,
    answered,
    seconds: Number(seconds.toFixed(3)),
    rps: Math.round(requests / seconds),
    statuses,
    errors,
    latencyMs: { p50: pct(0.5), p99: pct(0.99), max: pct(1) },
  })}\n`,
);
