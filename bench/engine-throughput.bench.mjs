#!/usr/bin/env node
// End-to-end sync throughput: a backfill of BENCH_USERS (10,000) source users into all three targets,
// then the unchanged re-run, then a run after 5% of the users changed. The engine (scan + sync workers,
// BullMQ on the real Redis, the per-request throttle) runs in this process with the built dist/ code; the
// sandbox runs as `profile-sync sandbox` in its own process, so the two do not share an event loop.
// Rate limits are off: the vendors' limits (120-1000 requests a minute) would measure only themselves;
// this measures what the engine can do when the vendor is not the bottleneck.
//
// Run alone: npm run build && node bench/engine-throughput.bench.mjs
// Tunables: BENCH_USERS (10000), BENCH_CONCURRENCY (32 sync jobs per target), REDIS_URL.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { cleanPrefix, loadEngine, root } from './lib/dist.mjs';
import { writeResult } from './lib/report.mjs';
import { benchEnv } from './lib/sandbox-process.mjs';

const { loadConfig, Engine, JOBS, startRun, waitForRun, createLogger } = await loadEngine();
const { Redis } = await import('ioredis');

const users = Number(process.env.BENCH_USERS ?? 10_000);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `bench-engine-${randomBytes(4).toString('hex')}`;
const TARGETS = ['sunshine', 'zephr', 'prelude'];

async function startSandbox() {
  const args = [
    join(root, 'dist', 'cli.js'),
    'sandbox',
    '--port',
    '0',
    '--users',
    String(users),
    '--rate-limit',
    '0',
  ];
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  const deadline = Date.now() + 60_000;
  while (!out.includes('PRELUDE_API_KEY=')) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`sandbox did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const env = Object.fromEntries([...out.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
  return { child, env };
}

async function sandboxTotal(env, target) {
  const url = env[`${target.toUpperCase()}_URL`];
  const res = await fetch(`${url}/__sandbox/counters`);
  return (await res.json()).total;
}

const sandbox = await startSandbox();
const env = benchEnv(sandbox.env, { redisUrl, prefix });
const engine = await Engine.create({
  jobs: JOBS,
  config: loadConfig(env),
  logger: createLogger({ level: 'warn' }),
});
const redis = new Redis(redisUrl);
const metrics = [];
const notes = [];
try {
  await engine.startWorkers({ concurrency });

  async function measure(label) {
    const before = Object.fromEntries(
      await Promise.all(TARGETS.map(async (t) => [t, await sandboxTotal(env, t)])),
    );
    const started = performance.now();
    const runId = await startRun(engine, { kind: 'backfill' });
    const run = await waitForRun(engine, runId, { pollMs: 50 });
    const seconds = (performance.now() - started) / 1000;
    if (run.status !== 'completed') throw new Error(`${label}: run ${runId} ended ${run.status}`);
    let arrived = 0;
    for (const t of TARGETS) arrived += (await sandboxTotal(env, t)) - before[t];
    const sent = TARGETS.reduce((n, t) => n + run.targets[t].requests, 0);
    const outcomes = {};
    for (const t of TARGETS) {
      for (const [o, n] of Object.entries(run.targets[t].outcomes))
        if (n) outcomes[o] = (outcomes[o] ?? 0) + n;
    }
    console.error(`${label}: ${seconds.toFixed(2)} s, ${sent} requests, ${JSON.stringify(outcomes)}`);
    return { seconds, sent, arrived, outcomes, run };
  }

  const first = await measure('backfill');
  metrics.push(
    {
      name: `backfill ${users} users x 3 targets`,
      value: Math.round(users / first.seconds),
      unit: 'users/s',
      better: 'higher',
    },
    {
      name: 'backfill: user-targets',
      value: Math.round((users * 3) / first.seconds),
      unit: 'user-targets/s',
      better: 'higher',
    },
    {
      name: 'backfill: requests sent',
      value: first.sent,
      unit: 'requests',
      detail: { arrivedAtSandbox: first.arrived },
    },
    { name: 'backfill: wall time', value: Number(first.seconds.toFixed(2)), unit: 's', better: 'lower' },
  );

  const again = await measure('unchanged re-run');
  metrics.push(
    { name: 'unchanged re-run', value: Math.round(users / again.seconds), unit: 'users/s', better: 'higher' },
    {
      name: 'unchanged re-run: requests sent',
      value: again.sent,
      unit: 'requests',
      detail: { arrivedAtSandbox: again.arrived },
    },
    {
      name: 'unchanged re-run: wall time',
      value: Number(again.seconds.toFixed(2)),
      unit: 's',
      better: 'lower',
    },
  );
  if (again.sent !== 0 || again.arrived !== 0)
    throw new Error(`unchanged re-run sent ${again.sent} requests (${again.arrived} arrived)`);

  const res = await fetch(`${sandbox.env.SOURCE_URL}/__sandbox/users/mutate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ share: 0.05, seed: 7 }),
  });
  const changed = (await res.json()).changed.length;
  const delta = await measure('5% changed');
  metrics.push(
    {
      name: `re-run after ${changed} users (5%) changed`,
      value: Math.round(users / delta.seconds),
      unit: 'users/s',
      better: 'higher',
    },
    { name: 're-run after 5% changed: requests sent', value: delta.sent, unit: 'requests' },
  );
  notes.push(
    `engine in one process (concurrency ${concurrency} sync jobs per target), sandbox in another; Redis ${redisUrl.replace(/\/\/[^@]*@/, '//***@')}; rate limits off`,
    `backfill requests: Sunshine (merge, default) GET + PUT per new user (lookup by identifier, seed 001), Zephr (owned, default) one PUT, Prelude one PATCH per linked user plus one batch_lookup per 100 users`,
    `unchanged re-run: ${again.sent} requests (hash per user and target; the scan decides, no job is enqueued)`,
    `load average when it ended: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} (other processes on the machine lower the figures)`,
  );
} finally {
  await engine.close();
  await cleanPrefix(redis, prefix);
  await redis.quit();
  sandbox.child.kill('SIGTERM');
}

writeResult({
  name: 'engine-throughput',
  description: `End-to-end sync throughput: backfill of ${users} sandbox users into Sunshine, Zephr and Prelude (rate limits off), the unchanged re-run, and a re-run after 5% changed.`,
  metrics,
  notes,
});
