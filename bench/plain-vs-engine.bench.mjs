#!/usr/bin/env node
// Issue 11.4 (engine half): the engine against a plain fetch loop over the same sandbox, in one run.
// BENCH_USERS (10,000) sandbox users, owned write modes (each write one request: Sunshine PUT, Zephr
// PUT, Prelude PATCH), rate limits off (sandbox `--rate-limit 0`, *_RATE_LIMIT 100,000,000 a minute).
// Each repetition (BENCH_REPEAT, 3), against one sandbox started for it:
//   plain: bench/lib/throughput-child.mjs plain: the source paged, per user and target the mapping and
//          one fetch, BENCH_CONCURRENCY (16) requests in flight per target; Prelude's users found first
//          by one batch_lookup per 100 (its ids are `usr_` ids), only the found ones PATCHed;
//   engine x1: one worker process (scan + sync workers, concurrency BENCH_CONCURRENCY per target);
//   engine x2: two worker processes, concurrency BENCH_CONCURRENCY each, as two replicas run
//              (BENCH_X2_SPLIT=1: BENCH_CONCURRENCY / 2 each, the same total in flight as x1).
// Measured: successful writes per second (2xx for the loop; created + updated for the engine), and CPU
// time per successful write: the worker processes' utime + stime (/proc/<pid>/stat) plus Redis's
// (INFO cpu used_cpu_user + used_cpu_sys), both over the run. Redis is a private redis-server started
// for the bench (BENCH_REDIS=shared uses REDIS_URL instead, whose CPU other clients then share).
// Each measurement follows BENCH_WARMUP (2) warm-up passes in the same processes (0: none): the first
// pass takes another path than the measured one (the engine looks Prelude's users up; from the second
// on it reads the links it stored), and with one warm-up the measured pass still compiled ~96 functions
// (--trace-opt); with two ~50, with three ~26 (the scan recompiles a few every run). The medians of the
// repetitions give engine/plain and CPU per write 2 processes / 1 process. Why 10,000 users and two
// warm-ups (3,000 and one before): docs/performance.md, "Steady state".
// Diagnostics (printed to stderr, the figures unchanged): BENCH_THREADS=1 (each worker's CPU by main
// thread and other threads, its context switches, the sandbox's CPU), BENCH_GC=1 (each worker's garbage
// collections), BENCH_COUNT_RT=1 (Redis round trips and commands), BENCH_CPU_PROF=<dir>,
// BENCH_HEAP_PROF=<dir>, BENCH_EXEC_ARGV (Node flags for the children), BENCH_CHILD_STDOUT=<dir> (each
// child's standard output, with a line where its measured pass starts: e.g. for --trace-opt). With
// BENCH_THREADS the measured passes' CLOCK_MONOTONIC span is printed, to cut a `perf record -k
// monotonic` to them.
//
// Run alone: npm run build && node bench/plain-vs-engine.bench.mjs
import { execFileSync, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { cleanPrefix, loadEngine, root } from './lib/dist.mjs';
import { procCpuSeconds, redisCpuSeconds, threadCpu } from './lib/process-cpu.mjs';
import { writeResult } from './lib/report.mjs';
import { benchEnv, startSandboxProcess } from './lib/sandbox-process.mjs';

const CHILD = join(root, 'bench', 'lib', 'throughput-child.mjs');
const { loadConfig, Engine, JOBS, startRun, waitForRun, createLogger } = await loadEngine();
const { Redis } = await import('ioredis');

const users = Number(process.env.BENCH_USERS ?? 10_000);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 16);
const repeat = Number(process.env.BENCH_REPEAT ?? 3);
const warmups = Number(process.env.BENCH_WARMUP ?? 2);
const split = process.env.BENCH_X2_SPLIT === '1';
const TARGETS = ['sunshine', 'zephr', 'prelude'];
/** BENCH_THREADS=1: what `threadCpu` counted between two readings. */
const since = (a, b) =>
  Object.entries(b)
    .map(([k, v]) => `${k} ${Number.isInteger(v) ? v - a[k] : (v - a[k]).toFixed(2)}`)
    .join(', ');

async function startRedis() {
  if (process.env.BENCH_REDIS === 'shared') return { url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' };
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      execFileSync('redis-cli', ['-p', String(port), 'ping'], { stdio: 'pipe' });
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGTERM');
        throw new Error('private redis-server did not start');
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { url, child };
}

function startChild(args, env) {
  const execArgv = [
    ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : []),
    // BENCH_EXEC_ARGV: Node/V8 flags for the children (the plain loop's and the engine's alike).
    ...(process.env.BENCH_EXEC_ARGV ? process.env.BENCH_EXEC_ARGV.split(' ') : []),
  ];
  const child = fork(CHILD, args, { env, execArgv, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${args[0]} child exited early with ${code}`)));
    // BENCH_CHILD_STDOUT=<dir>: each child's standard output kept (e.g. BENCH_EXEC_ARGV=--trace-gc-nvp).
    if (process.env.BENCH_CHILD_STDOUT)
      child.stdout.pipe(
        createWriteStream(join(process.env.BENCH_CHILD_STDOUT, `${args[0]}-${child.pid}.log`)),
      );
    child.stdout.on('data', (b) => {
      if (b.toString().includes('ready')) resolve(child);
    });
  });
}

const redisInfo = await startRedis();
const redis = new Redis(redisInfo.url);
const logger = createLogger({ level: 'warn' });

function envFor(sandboxEnv, prefix) {
  return {
    PATH: process.env.PATH ?? '',
    // The children's diagnostics switches (bench/lib/throughput-child.mjs).
    ...Object.fromEntries(
      ['BENCH_COUNT_RT', 'BENCH_GC', 'BENCH_HEAP_PROF', 'BENCH_CHILD_STDOUT']
        .filter((k) => process.env[k])
        .map((k) => [k, process.env[k]]),
    ),
    ...benchEnv(
      sandboxEnv,
      { redisUrl: redisInfo.url, prefix },
      { ZEPHR_WRITE_MODE: 'owned', SUNSHINE_WRITE_MODE: 'owned' },
    ),
  };
}

async function plain(sandboxEnv) {
  const child = await startChild(['plain', String(concurrency)], envFor(sandboxEnv, 'unused'));
  const go = () => {
    const done = new Promise((resolve) => child.once('message', resolve));
    child.send('go');
    return done;
  };
  try {
    for (let w = 0; w < warmups; w++) await go();
    const cpu0 = procCpuSeconds(child.pid);
    const r = await go();
    const cpu = procCpuSeconds(child.pid) - cpu0;
    return {
      writes: r.writes,
      failed: r.failed,
      lookups: r.lookups,
      seconds: r.seconds,
      cpu,
      workerCpu: cpu,
      redisCpu: 0,
    };
  } finally {
    child.removeAllListeners('exit');
    child.send('stop');
    await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve()));
  }
}

/** `sandbox`: the repetition's (its env; BENCH_THREADS: its CPU over the pass). */
async function engine(sandbox, processes) {
  const sandboxEnv = sandbox.env;
  const prefix = `bench-pve-${randomBytes(4).toString('hex')}`;
  const env = envFor(sandboxEnv, prefix);
  // Each process a replica as deployed: SYNC_CONCURRENCY jobs per target each (BENCH_X2_SPLIT=1: the
  // same total split between them instead).
  const per = split ? Math.max(1, Math.round(concurrency / processes)) : concurrency;
  const children = [];
  for (let i = 0; i < processes; i++)
    children.push(await startChild(['engine', String(per), i === 0 ? '1' : '0'], env));
  // Enqueue-only engine in this process: starts the run and polls it (its CPU is not counted).
  const control = await Engine.create({ jobs: JOBS, config: loadConfig(env), logger });
  try {
    for (let n = 0; n < warmups; n++) {
      // The same backfill before the measured one (JIT, connections), then the state forgotten so
      // that the next run writes every user again.
      const w = await waitForRun(control, await startRun(control, { kind: 'backfill' }), { pollMs: 100 });
      if (w.status !== 'completed') throw new Error(`engine x${processes}: warm-up run ended ${w.status}`);
      await redis.del(...TARGETS.flatMap((t) => [control.layout.state(t), control.layout.unlinked(t)]));
    }
    for (const c of children) c.send('reset');
    if (process.env.BENCH_COUNT_RT === '1') {
      await redis.config('RESETSTAT');
      await redis.config('SET', 'slowlog-log-slower-than', '0', 'slowlog-max-len', '200000');
      await redis.slowlog('RESET');
    }
    const cpu0 = children.map((c) => procCpuSeconds(c.pid));
    const th0 = children.map((c) => threadCpu(c.pid));
    const sb0 = procCpuSeconds(sandbox.child.pid);
    const r0 = await redisCpuSeconds(redis);
    const started = performance.now();
    const mono0 = process.hrtime.bigint();
    const run = await waitForRun(control, await startRun(control, { kind: 'backfill' }), { pollMs: 100 });
    const seconds = (performance.now() - started) / 1000;
    // CLOCK_MONOTONIC seconds of the measured pass, to cut a `perf record -k monotonic` to it.
    if (process.env.BENCH_THREADS === '1')
      console.error(
        `engine x${processes} measured ${Number(mono0) / 1e9} ${Number(process.hrtime.bigint()) / 1e9} pids ${children.map((c) => c.pid).join(',')}`,
      );
    const workerCpu = children.reduce((a, c, i) => a + procCpuSeconds(c.pid) - cpu0[i], 0);
    const redisUsed = (await redisCpuSeconds(redis)) - r0;
    if (process.env.BENCH_THREADS === '1') {
      for (const [i, c] of children.entries())
        console.error(`engine x${processes}, worker ${i}: ${since(th0[i], threadCpu(c.pid))}`);
      console.error(
        `engine x${processes}: sandbox CPU ${(procCpuSeconds(sandbox.child.pid) - sb0).toFixed(2)} s`,
      );
    }
    if (process.env.BENCH_COUNT_RT === '1') {
      // Redis's own time per command (INFO commandstats), the largest first.
      const stats = [...(await redis.info('commandstats')).matchAll(/cmdstat_(\S+):calls=(\d+),usec=(\d+)/g)];
      stats.sort((a, b) => Number(b[3]) - Number(a[3]));
      console.error(
        stats
          .slice(0, 15)
          .map((m) => `${m[1]}\tcalls ${m[2]}\tusec ${m[3]}`)
          .join('\n'),
      );
      // Per script (SLOWLOG with every command logged): total µs by sha and first key.
      const log = await redis.slowlog('GET', 200000);
      await redis.config('SET', 'slowlog-log-slower-than', '10000');
      const by = new Map();
      for (const [, , us, args] of log) {
        if (String(args[0]).toLowerCase() !== 'evalsha') continue;
        const k = `${String(args[1]).slice(0, 8)} ${String(args[3] ?? '')
          .replace(/^\{[^}]*\}/, '{p}')
          .replace(/\d{8}T\d{6}Z-[0-9a-f]{4}/, '<run>')}`;
        const e = by.get(k) ?? [0, 0];
        by.set(k, [e[0] + 1, e[1] + Number(us)]);
      }
      for (const [k, [n, us]] of [...by].sort((a, b) => b[1][1] - a[1][1]).slice(0, 12))
        console.error(`script ${k}\tcalls ${n}\tusec ${us}\tper call ${(us / n).toFixed(1)}`);
    }
    if (run.status !== 'completed')
      throw new Error(`engine x${processes}: run ${run.id} ended ${run.status}`);
    let writes = 0;
    let failed = 0;
    for (const t of TARGETS) {
      const o = run.targets[t].outcomes;
      writes += o.created + o.updated;
      failed += o.failed + o.rejected;
    }
    return { writes, failed, seconds, cpu: workerCpu + redisUsed, workerCpu, redisCpu: redisUsed };
  } finally {
    await control.close();
    for (const c of children) {
      c.removeAllListeners('exit');
      c.send('stop');
    }
    await Promise.all(
      children.map(
        (c) => new Promise((resolve) => (c.exitCode === null ? c.once('exit', resolve) : resolve())),
      ),
    );
    await cleanPrefix(redis, prefix);
  }
}

const rows = { plain: [], engine1: [], engine2: [] };
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
try {
  for (let i = 0; i < repeat; i++) {
    const sandbox = await startSandboxProcess(['--users', String(users), '--rate-limit', '0']);
    try {
      for (const [key, fn] of [
        ['plain', () => plain(sandbox.env)],
        ['engine1', () => engine(sandbox, 1)],
        ['engine2', () => engine(sandbox, 2)],
      ]) {
        const r = await fn();
        const perWriteMs = (r.cpu / r.writes) * 1000;
        rows[key].push({ ...r, writesPerSecond: r.writes / r.seconds, cpuPerWriteMs: perWriteMs });
        console.error(
          `#${i + 1} ${key}: ${r.writes} writes (${r.failed} not${r.lookups !== undefined ? `, ${r.lookups} lookups` : ''}) in ${r.seconds.toFixed(2)} s = ${(r.writes / r.seconds).toFixed(0)} writes/s; CPU ${r.workerCpu.toFixed(2)} s workers + ${r.redisCpu.toFixed(2)} s Redis = ${perWriteMs.toFixed(3)} ms/write`,
        );
      }
    } finally {
      sandbox.child.kill('SIGTERM');
    }
  }
} finally {
  await redis.quit();
  redisInfo.child?.kill('SIGTERM');
}

const m = Object.fromEntries(
  Object.entries(rows).map(([k, rs]) => [
    k,
    {
      writesPerSecond: median(rs.map((r) => r.writesPerSecond)),
      cpuPerWriteMs: median(rs.map((r) => r.cpuPerWriteMs)),
      workerCpuPerWriteMs: median(rs.map((r) => (r.workerCpu / r.writes) * 1000)),
      redisCpuPerWriteMs: median(rs.map((r) => (r.redisCpu / r.writes) * 1000)),
      writes: median(rs.map((r) => r.writes)),
      lookups: median(rs.map((r) => r.lookups ?? 0)),
    },
  ]),
);
// Ratios per repetition (the same sandbox, one after the other), then their median.
const ratio1 = median(rows.plain.map((p, i) => rows.engine1[i].writesPerSecond / p.writesPerSecond));
const ratio2 = median(rows.plain.map((p, i) => rows.engine2[i].writesPerSecond / p.writesPerSecond));
const cpuRatio = median(rows.engine1.map((e, i) => rows.engine2[i].cpuPerWriteMs / e.cpuPerWriteMs));
const r2 = (x) => Number(x.toFixed(2));
const r3 = (x) => Number(x.toFixed(3));
writeResult({
  name: 'plain-vs-engine',
  description: `The engine against a plain fetch loop over the same sandbox (issue 11.4): ${users} users x 3 targets, owned write modes, rate limits off, ${concurrency} requests in flight per target; median of ${repeat} repetitions.`,
  metrics: [
    {
      name: 'plain fetch loop',
      value: Math.round(m.plain.writesPerSecond),
      unit: 'writes/s',
      better: 'higher',
    },
    {
      name: 'engine, 1 worker process',
      value: Math.round(m.engine1.writesPerSecond),
      unit: 'writes/s',
      better: 'higher',
    },
    {
      name: 'engine, 2 worker processes',
      value: Math.round(m.engine2.writesPerSecond),
      unit: 'writes/s',
      better: 'higher',
    },
    { name: 'engine x1 / plain loop (writes/s)', value: r2(ratio1), unit: 'ratio', better: 'higher' },
    { name: 'engine x2 / plain loop (writes/s)', value: r2(ratio2), unit: 'ratio', better: 'higher' },
    { name: 'CPU per write: plain loop', value: r3(m.plain.cpuPerWriteMs), unit: 'ms', better: 'lower' },
    {
      name: 'CPU per write: engine x1 (workers + Redis)',
      value: r3(m.engine1.cpuPerWriteMs),
      unit: 'ms',
      better: 'lower',
      detail: { workers: r3(m.engine1.workerCpuPerWriteMs), redis: r3(m.engine1.redisCpuPerWriteMs) },
    },
    {
      name: 'CPU per write: engine x2 (workers + Redis)',
      value: r3(m.engine2.cpuPerWriteMs),
      unit: 'ms',
      better: 'lower',
      detail: { workers: r3(m.engine2.workerCpuPerWriteMs), redis: r3(m.engine2.redisCpuPerWriteMs) },
    },
    { name: 'CPU per write: engine x2 / engine x1', value: r2(cpuRatio), unit: 'ratio', better: 'lower' },
  ],
  notes: [
    `writes: successful writes (plain: 2xx PUT/PATCH answers; engine: created + updated); Prelude's users are found by batch_lookup first in both (plain: ${m.plain.lookups} lookups a pass, 100 users each; the engine's measured pass reuses the links its warm-up stored), and the users no lookup finds are no write and no PATCH in both (${3 * users - m.engine1.writes} of ${3 * users} user-targets here; plain: ${3 * users - m.plain.writes})`,
    split
      ? `engine x2: two worker processes with concurrency ${Math.max(1, Math.round(concurrency / 2))} each (the same ${concurrency} jobs in flight per target as x1); the scan runs in the first`
      : `engine x2: two worker processes with concurrency ${concurrency} each (two replicas as deployed: twice the jobs in flight of x1); the scan runs in the first`,
    `each measured pass follows ${warmups} warm-up pass${warmups === 1 ? '' : 'es'} in the same processes (the engine: the same backfill, then the target state deleted so that every user is written again)`,
    `CPU: /proc/<pid>/stat utime + stime of the worker processes, plus Redis INFO cpu; ${process.env.BENCH_REDIS === 'shared' ? 'the shared Redis (other clients add to it)' : 'a private redis-server started for the bench'}; the sandbox's and this process's CPU are not counted`,
    `runs per repetition: ${JSON.stringify(Object.fromEntries(Object.entries(rows).map(([k, rs]) => [k, rs.map((r) => Math.round(r.writesPerSecond))])))} writes/s`,
    `load average when it ended: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(
        ' ',
      )} (the machine is shared: 2 cores, the sandbox and other processes take CPU from the wall-clock figures)`,
  ],
});
