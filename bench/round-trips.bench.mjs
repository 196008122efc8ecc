#!/usr/bin/env node
// Redis round trips per write (issue 11.2; per sync job before issue 11.4's batches, when a job was a
// write): a first backfill of BENCH_USERS (1,000) sandbox users
// into Sunshine, Zephr and Prelude in the owned write modes (each write one request), rate limits off,
// the engine in this process with every ioredis command counted (bench/lib/redis-count.mjs): a Lua
// script by its name, a MULTI or pipeline as one round trip. Commands sent inside a sync job's handler
// are tagged `job`; BullMQ's own (fetching, finishing, lock renewal, stalled checks) and the scan's are
// `other`. A write is one (user, target) the run settled (1,000 users x 3 targets); a sync batch job
// (jobs/sync-batch.ts) holds up to SYNC_BATCH_SIZE of them. Prints the table per write
// (docs/performance.md has the figures) and the target jobs run per write.
//
// Run alone: npm run build && node bench/round-trips.bench.mjs
// Tunables: BENCH_USERS (1000), BENCH_CONCURRENCY (16), REDIS_URL.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { cleanPrefix, loadEngine } from './lib/dist.mjs';
import { installRedisCounter } from './lib/redis-count.mjs';
import { writeResult } from './lib/report.mjs';
import { benchEnv, startSandboxProcess } from './lib/sandbox-process.mjs';

const counter = installRedisCounter(Redis);
const { loadConfig, Engine, JOBS, startRun, waitForRun, createLogger } = await loadEngine();

const users = Number(process.env.BENCH_USERS ?? 1_000);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 16);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TARGETS = ['sunshine', 'zephr', 'prelude'];

// The same jobs, each target-queue handler run inside the `job` tag (and counted).
let targetJobs = 0;
const jobs = {
  ...JOBS,
  jobs: JOBS.jobs.map((j) =>
    j.queue === 'target'
      ? {
          ...j,
          handler: (job, ctx) => {
            targetJobs++;
            return counter.tag.run('job', () => j.handler(job, ctx));
          },
        }
      : j,
  ),
};

const sandbox = await startSandboxProcess(['--users', String(users), '--rate-limit', '0']);
const prefix = `bench-rt-${randomBytes(4).toString('hex')}`;
const env = benchEnv(
  sandbox.env,
  { redisUrl, prefix },
  { ZEPHR_WRITE_MODE: 'owned', SUNSHINE_WRITE_MODE: 'owned' },
);
const engine = await Engine.create({
  jobs,
  config: loadConfig(env),
  logger: createLogger({ level: 'warn' }),
});
const redis = new Redis(redisUrl);
let run;
try {
  await engine.startWorkers({ concurrency });
  counter.reset();
  targetJobs = 0;
  run = await waitForRun(engine, await startRun(engine, { kind: 'backfill' }), { pollMs: 1000 });
  if (run.status !== 'completed') throw new Error(`run ${run.id} ended ${run.status}`);
} finally {
  await engine.close();
  await cleanPrefix(redis, prefix);
  await redis.quit();
  sandbox.child.kill('SIGTERM');
}

const writes = TARGETS.reduce(
  (n, t) => n + Object.values(run.targets[t].outcomes).reduce((a, b) => a + b, 0),
  0,
);
const rows = [...counter.counts.entries()]
  .map(([k, n]) => {
    const [where, command, key] = k.split('\t');
    return { where, command, key, n, perWrite: n / writes };
  })
  .sort((a, b) => a.where.localeCompare(b.where) || b.n - a.n);
const inJob = rows.filter((r) => r.where === 'job').reduce((a, r) => a + r.n, 0);
const total = rows.reduce((a, r) => a + r.n, 0);
console.error(
  `${writes} writes (${users} users x ${TARGETS.length} targets) in ${targetJobs} target jobs, concurrency ${concurrency}`,
);
console.error('| where | command | first key | round trips | per write |');
console.error('| --- | --- | --- | ---: | ---: |');
for (const r of rows) {
  if (r.perWrite < 0.005) continue;
  console.error(`| ${r.where} | ${r.command} | ${r.key} | ${r.n} | ${r.perWrite.toFixed(2)} |`);
}
const small = rows.filter((r) => r.perWrite < 0.005).reduce((a, r) => a + r.n, 0);
console.error(`| | (others, < 0.005 per write each) | | ${small} | ${(small / writes).toFixed(2)} |`);
console.error(`| all | | | ${total} | ${(total / writes).toFixed(2)} |`);

writeResult({
  name: 'round-trips',
  description: `Redis round trips per write ((user, target) settled) on a first backfill of ${users} sandbox users x 3 targets (owned write modes, rate limits off, concurrency ${concurrency}), counted in the engine's process (issues 11.2, 11.4).`,
  metrics: [
    {
      name: 'round trips per write, all',
      value: Number((total / writes).toFixed(2)),
      unit: 'round trips',
      better: 'lower',
    },
    {
      name: 'round trips per write, in the job handlers',
      value: Number((inJob / writes).toFixed(2)),
      unit: 'round trips',
      better: 'lower',
    },
    {
      name: 'round trips per write, BullMQ and scan',
      value: Number(((total - inJob) / writes).toFixed(2)),
      unit: 'round trips',
      better: 'lower',
    },
    {
      name: 'target jobs (sync, sync-batch, sync-handover) per write',
      value: Number((targetJobs / writes).toFixed(3)),
      unit: 'jobs',
      better: 'lower',
    },
  ],
  notes: [
    'counted by patching ioredis sendCommand in the engine process (bench/lib/redis-count.mjs): a MULTI or pipeline is one round trip, a Lua script one',
    'the table by command is printed on stderr; docs/performance.md keeps it with each step',
  ],
});
