#!/usr/bin/env node
// Requests per write on a first backfill (issue 11.1 / 11.4), per target and write mode: BENCH_USERS
// (1,000) sandbox users backfilled into Sunshine, Zephr and Prelude, once with ZEPHR_WRITE_MODE and
// SUNSHINE_WRITE_MODE `owned`, once with both `merge`, each into a fresh sandbox, then the unchanged
// re-run. The requests are counted by the simulators themselves (`/__sandbox/counters`), the writes are
// the run's `created + updated`. Prelude has one mode (PATCH); its batch_lookups (one per 100 users,
// issue 10) are the requests beside its writes; its unlinked users cost none. Rate limits are off: this
// counts requests, not time.
//
// Run alone: npm run build && node bench/requests-per-write.bench.mjs
// Tunables: BENCH_USERS (1000), BENCH_CONCURRENCY (16), REDIS_URL.
import { randomBytes } from 'node:crypto';
import { cleanPrefix, loadEngine } from './lib/dist.mjs';
import { writeResult } from './lib/report.mjs';
import { benchEnv, startSandboxProcess } from './lib/sandbox-process.mjs';

const { loadConfig, Engine, JOBS, startRun, waitForRun, createLogger } = await loadEngine();
const { Redis } = await import('ioredis');

const users = Number(process.env.BENCH_USERS ?? 1_000);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 16);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TARGETS = ['sunshine', 'zephr', 'prelude'];

async function counters(env, target) {
  const res = await fetch(`${env[`${target.toUpperCase()}_URL`]}/__sandbox/counters`);
  return (await res.json()).total;
}

/** One first backfill and its unchanged re-run in `mode` (both owned, or both merge). */
async function measure(mode) {
  const sandbox = await startSandboxProcess(['--users', String(users), '--rate-limit', '0']);
  const prefix = `bench-rpw-${randomBytes(4).toString('hex')}`;
  const env = benchEnv(
    sandbox.env,
    { redisUrl, prefix },
    { ZEPHR_WRITE_MODE: mode, SUNSHINE_WRITE_MODE: mode },
  );
  const engine = await Engine.create({
    jobs: JOBS,
    config: loadConfig(env),
    logger: createLogger({ level: 'warn' }),
  });
  const redis = new Redis(redisUrl);
  try {
    await engine.startWorkers({ concurrency });
    const out = {};
    for (const label of ['first', 'again']) {
      const before = Object.fromEntries(
        await Promise.all(TARGETS.map(async (t) => [t, await counters(env, t)])),
      );
      const run = await waitForRun(engine, await startRun(engine, { kind: 'backfill' }), { pollMs: 50 });
      if (run.status !== 'completed') throw new Error(`${mode} ${label}: run ${run.id} ended ${run.status}`);
      out[label] = {};
      for (const t of TARGETS) {
        const o = run.targets[t].outcomes;
        const arrived = (await counters(env, t)) - before[t];
        if (arrived !== run.targets[t].requests)
          throw new Error(`${mode} ${label} ${t}: ${run.targets[t].requests} sent, ${arrived} arrived`);
        out[label][t] = {
          requests: arrived,
          writes: o.created + o.updated,
          unlinked: o.unlinked,
          failed: o.failed,
        };
      }
    }
    return out;
  } finally {
    await engine.close();
    await cleanPrefix(redis, prefix);
    await redis.quit();
    sandbox.child.kill('SIGTERM');
  }
}

const metrics = [];
const notes = [];
for (const mode of ['owned', 'merge']) {
  const r = await measure(mode);
  for (const t of TARGETS) {
    const f = r.first[t];
    if (t === 'prelude' && mode === 'merge') continue; // one mode: the owned run already measured it
    const perWrite = f.writes ? f.requests / f.writes : 0;
    const name = t === 'prelude' ? 'prelude (patch)' : `${t} ${mode}`;
    metrics.push({
      name: `first backfill: ${name}`,
      value: Number(perWrite.toFixed(3)),
      unit: 'requests/write',
      better: 'lower',
      detail: { requests: f.requests, writes: f.writes, unlinked: f.unlinked, failed: f.failed },
    });
    const again = r.again[t].requests;
    if (again !== 0) throw new Error(`${mode}: the unchanged re-run sent ${again} requests to ${t}`);
  }
  const total = TARGETS.reduce((n, t) => n + r.first[t].requests, 0);
  metrics.push({
    name: `first backfill, all targets (${mode} modes)`,
    value: total,
    unit: 'requests',
    better: 'lower',
  });
  console.error(`${mode}: ${JSON.stringify(r.first)}; re-run ${JSON.stringify(r.again)}`);
}
notes.push(
  `${users} users, each a create in every target; requests counted by the simulators (/__sandbox/counters), writes = created + updated`,
  'owned: ZEPHR_WRITE_MODE=owned and SUNSHINE_WRITE_MODE=owned; merge: both merge (the defaults are Zephr owned, Sunshine merge)',
  'prelude: requests/write counts its batch_lookups (one per 100 users) beside its PATCHes; users Prelude does not know (unlinked) cost no PATCH',
  'the unchanged re-run sent 0 requests to every target in both modes (checked; the benchmark fails otherwise)',
);

writeResult({
  name: 'requests-per-write',
  description: `Requests per write on a first backfill of ${users} sandbox users, per target and write mode (issue 11.1), counted by the simulators; then the unchanged re-run (0 requests).`,
  metrics,
  notes,
});
