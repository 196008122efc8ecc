#!/usr/bin/env node
// Issue 11.4: Redis at scale. For each size in BENCH_SCALE_USERS (default 100000; the issue's figures
// need `BENCH_SCALE_USERS=100000,1000000`, 3 to 10 minutes and ~1.5 GB of Redis at 1M):
//  1. a sandbox with that many users (its own process) and the engine (this process, dist/ code);
//  2. state written directly, for every user and target, with the store's own encoder
//     (StateStore.encode: the exact value a backfill writes, checked in step 0); Prelude as a backfill
//     leaves it: the users are looked up (the connector's batch_lookup, 100 a request, against the
//     sandbox's `usr_` users), the found ones linked (LinkStore.addFound) and given a state, the rest
//     an unlinked marker (the store's encoder); and the run record
//     a first backfill leaves: its kept items (RUN_ITEMS_MAX per target, default 10,000) recorded with
//     RunStore.record, which also writes their users' history entries;
//  3. Redis bytes (MEMORY USAGE of every key of the prefix, by kind) per known user and per run;
//  4. a bare scan: the source connector paging through every user, doing nothing;
//  5. the unchanged re-run: a scheduled run of the engine (scan with every target on, limits off,
//     deletion detection included) that must find every user unchanged (0 requests, 0 jobs);
//     users/s of both, and their ratio (issue 11.4: at least 0.5). The first re-run once; then the
//     steady re-run and the bare scans BENCH_REPEAT (3) times in turn, their medians. During each
//     re-run its seen set (deletion detection) is sampled every 50 ms: the largest is reported.
// Step 0 (once): a real `backfill` of BENCH_CHECK_USERS (1,000) users, whose every state value must be
// byte for byte what step 2's encoder makes of the same users (the time prefix aside).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { dist, distJobs, loadEngine, root } from './lib/dist.mjs';
import { watchGc } from './lib/gc-watch.mjs';
import { cmdDelta, procCpuSeconds, redisCpuSeconds } from './lib/process-cpu.mjs';
import { writeResult } from './lib/report.mjs';
import { benchEnv, startSandboxProcess } from './lib/sandbox-process.mjs';

const { loadConfig, Engine, JOBS, startRun, waitForRun, createLogger } = await loadEngine();
const { heldItem } = await import(distJobs('link-steps.js'));
const { diffFields } = await import(dist('core/diff.js'));
const { RejectedRecordError } = await import(dist('core/errors.js'));
const { hashFields } = await import(dist('core/hashing.js'));
const { encodeUnlinked } = await import(dist('store/unlinked-marker.js'));

const sizes = (process.env.BENCH_SCALE_USERS ?? '100000').split(',').map(Number);
const checkUsers = Number(process.env.BENCH_CHECK_USERS ?? 1000);
const repeat = Math.max(1, Number(process.env.BENCH_REPEAT ?? 3));
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TARGETS = ['sunshine', 'zephr', 'prelude'];
const redis = new Redis(redisUrl);

const baseEnv = (sandbox, prefix) => benchEnv(sandbox.env, { redisUrl, prefix, logLevel: 'error' });

async function clean(prefix) {
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `{${prefix}}:*`, 'COUNT', 1000);
    cursor = next;
    if (batch.length) await redis.unlink(...batch);
  } while (cursor !== '0');
}

/** What a key holds, from its name under `{p}:`. */
function kind(rest) {
  if (/^state:[a-z]+:keys$/.test(rest)) return 'stateKeys';
  if (rest.startsWith('state:')) return 'state';
  if (rest.startsWith('unlinked:')) return 'unlinked';
  if (rest === 'blocks' || rest === 'mutations') return 'blocks';
  if (rest.startsWith('links:')) return 'links';
  if (rest.startsWith('history:') || /^run:[^:]+:users:/.test(rest)) return 'history';
  if (rest.startsWith('orphans:') || rest === 'tombstones') return 'deletions';
  if (/^run:[^:]+:(seen|gone:|absent|confirm)/.test(rest)) return 'runDeletions';
  if (/^run:[^:]+:(pending|settled)$/.test(rest)) return 'runPendingSettled';
  if (rest.startsWith('run:') || rest === 'runs') return 'run';
  if (rest.startsWith('scan:') || rest.startsWith('sync-')) return 'bullmq';
  if (rest.startsWith('throttle:')) return 'throttle';
  return 'other';
}

/** MEMORY USAGE (exact: SAMPLES 0) of every key of the prefix, summed by kind. */
async function measure(prefix) {
  const base = `{${prefix}}:`;
  const bytes = {};
  const keys = {};
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${base}*`, 'COUNT', 1000);
    cursor = next;
    const p = redis.pipeline();
    for (const k of batch) p.memory('USAGE', k, 'SAMPLES', 0);
    const res = batch.length ? await p.exec() : [];
    batch.forEach((k, i) => {
      const g = kind(k.slice(base.length));
      bytes[g] = (bytes[g] ?? 0) + (Number(res[i][1]) || 0);
      keys[g] = (keys[g] ?? 0) + 1;
    });
  } while (cursor !== '0');
  return { bytes, keys };
}

/** Every source user, page by page, through the engine's own source connector. */
async function* users(engine) {
  for await (const rec of engine.source().scan({ pageSize: engine.settings.pageSize }))
    if (rec.ok) yield rec.user;
}

/**
 * The state values of a batch of users as the engine writes them (StateStore.encode), per target; with
 * `linked` (source id -> Prelude id), Prelude's only for linked users, the others in `unlinked`.
 */
async function encodeBatch(engine, batch, at, linked) {
  const out = [];
  const unlinked = [];
  for (const t of TARGETS) {
    const connector = engine.connector(t);
    for (const user of batch) {
      let fields;
      try {
        fields = connector.map(user);
      } catch (err) {
        if (err instanceof RejectedRecordError) continue;
        throw err;
      }
      if (t === 'prelude' && linked && !linked.has(user.id)) {
        unlinked.push({ user, fields });
        continue;
      }
      out.push({ t, user, fields, value: await engine.state.encode(t, user.id, fields, at) });
    }
  }
  if (linked) out.unlinked = unlinked;
  return out;
}

/**
 * Prelude's links as a first backfill finds them: a batch_lookup per 100 users (whose Prelude mapping
 * is not rejected), the found ones stored by the engine's LinkStore (`addFound`, the scan's write).
 */
async function lookupBatch(engine, batch, at) {
  const connector = engine.connector('prelude');
  const candidates = batch.filter((user) => {
    try {
      connector.map(user);
      return true;
    } catch (err) {
      if (err instanceof RejectedRecordError) return false;
      throw err;
    }
  });
  const parts = [];
  for (let i = 0; i < candidates.length; i += 100) parts.push(candidates.slice(i, i + 100));
  const found = (await Promise.all(parts.map((p) => connector.linker.lookup(p)))).flatMap((r) => r.found);
  await engine.links.addFound(found, at);
  return new Map(found.map((f) => [f.sourceId, f.preludeUserId]));
}

async function makeEngine(env) {
  // BENCH_CHUNK: the scan's chunk size (engine default 5,000), to compare.
  const settings = {
    ...(process.env.BENCH_CHUNK ? { chunkSize: Number(process.env.BENCH_CHUNK) } : {}),
    ...(process.env.BENCH_READ_AHEAD ? { readAhead: Number(process.env.BENCH_READ_AHEAD) } : {}),
  };
  return Engine.create({
    jobs: JOBS,
    config: loadConfig(env),
    logger: createLogger({ level: 'error' }),
    settings,
  });
}

function backfillCli(env) {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [join(root, 'dist', 'cli.js'), 'backfill', '--json', '--concurrency', '16'],
      { env: { PATH: process.env.PATH, ...env }, maxBuffer: 64 << 20, timeout: 1_800_000 },
      (err, stdout, stderr) => (err && !stdout ? reject(new Error(stderr)) : resolve(JSON.parse(stdout))),
    );
  });
}

/**
 * Step 0: a real backfill's state values are exactly what the direct writer encodes, and the users it
 * linked in Prelude (or marked unlinked) are exactly those the direct writer's lookups find (or not).
 */
async function checkFormat() {
  const sandbox = await startSandboxProcess(['--users', String(checkUsers), '--rate-limit', '0']);
  const prefix = `bench-scale-check-${randomBytes(4).toString('hex')}`;
  try {
    const env = baseEnv(sandbox, prefix);
    await backfillCli(env);
    const engine = await makeEngine(env);
    let compared = 0;
    let linked = 0;
    let unlinked = 0;
    try {
      let batch = [];
      const check = async () => {
        const ids = batch.map((u) => u.id);
        const stored = await engine.links.getMany(ids);
        const found = await lookupBatch(engine, batch, 0); // HSETNX: changes nothing already linked
        const markers = await engine.state.getUnlinkedMany('prelude', ids);
        for (const [i, id] of ids.entries()) {
          if (stored.get(id) !== found.get(id) || (markers[i] !== null) === found.has(id))
            throw new Error(
              `link check: ${id}: backfill ${stored.get(id)} / ${markers[i]?.at}, lookup ${found.get(id)}`,
            );
        }
        linked += stored.size;
        unlinked += markers.filter((m) => m !== null).length;
        const encoded = await encodeBatch(engine, batch, 0);
        for (const { t, user, fields, value } of encoded) {
          const written = await redis.hget(engine.layout.state(t), user.id);
          if (written === null) continue; // Prelude: a user Prelude does not know (unlinked, no state)
          const at = Number.parseInt(written, 36);
          const mine = await engine.state.encode(t, user.id, fields, at);
          if (mine !== written || value.slice(value.indexOf(',')) !== written.slice(written.indexOf(',')))
            throw new Error(`format check: ${t} ${user.id}: backfill wrote ${written}, encoder ${mine}`);
          compared++;
        }
        batch = [];
      };
      for await (const user of users(engine)) {
        batch.push(user);
        if (batch.length === 500) await check();
      }
      await check();
    } finally {
      await engine.close();
    }
    if (compared < checkUsers * 2) throw new Error(`format check compared only ${compared} values`);
    return { compared, linked, unlinked };
  } finally {
    await clean(prefix);
    sandbox.child.kill('SIGTERM');
  }
}

async function atSize(n) {
  const t0 = performance.now();
  const sandbox = await startSandboxProcess(['--users', String(n), '--rate-limit', '0'], {
    timeoutMs: 600_000,
  });
  const prefix = `bench-scale-${randomBytes(4).toString('hex')}`;
  const env = baseEnv(sandbox, prefix);
  const engine = await makeEngine(env);
  try {
    console.error(`${n}: sandbox up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    // 2. state for every user and target, and the run record (kept items + history) of a backfill.
    const runId = await engine.runs.create('backfill', { targets: TARGETS });
    const itemsMax = engine.runs.retention.itemsMax;
    const now = Date.now();
    let written = 0;
    let linkedN = 0;
    let unlinkedN = 0;
    let batch = [];
    const flush = async () => {
      const linked = await lookupBatch(engine, batch, now);
      const encoded = await encodeBatch(engine, batch, now, linked);
      const p = redis.pipeline();
      for (const e of encoded) p.hset(engine.layout.state(e.t), e.user.id, e.value);
      // As StateStore.markUnlinked (the scan's and the sync job's write).
      for (const u of encoded.unlinked)
        p.hset(engine.layout.unlinked('prelude'), u.user.id, encodeUnlinked(now, hashFields(u.fields)));
      await p.exec();
      linkedN += linked.size;
      unlinkedN += encoded.unlinked.length;
      const items = encoded
        .filter((e) => written + batch.indexOf(e.user) < itemsMax)
        .map((e) => ({
          userId: e.user.id,
          target: e.t,
          outcome: 'created',
          diff: diffFields(null, e.fields),
          attempts: 1,
          requests: [
            {
              method: 'PUT',
              path: `/x/${encodeURIComponent(e.user.id)}`,
              status: 201,
              durationMs: 3,
              requestId: randomBytes(8).toString('hex'),
              attempt: 1,
            },
          ],
          at: now,
        }));
      // Prelude's unlinked users: the scan's own item (jobs/link-steps.ts heldItem), as a backfill records.
      for (const u of encoded.unlinked)
        if (written + batch.indexOf(u.user) < itemsMax)
          items.push(heldItem('unlinked', u.user.id, new Map(), engine.connector('prelude'), false, now));
      for (let i = 0; i < items.length; i += 100)
        await engine.runs.record(runId, { items: items.slice(i, i + 100), now });
      written += batch.length;
      batch = [];
    };
    const tw = performance.now();
    for await (const user of users(engine)) {
      batch.push(user);
      if (batch.length === 1000) await flush();
    }
    await flush();
    await engine.runs.finish(runId, 'completed');
    console.error(
      `${n}: state written for ${written} users in ${((performance.now() - tw) / 1000).toFixed(1)} s`,
    );
    if (written !== n) throw new Error(`wrote ${written} users, expected ${n}`);
    console.error(`${n}: ${linkedN} linked in Prelude, ${unlinkedN} unlinked`);
    const m = await measure(prefix);
    console.error(`${n}: ${JSON.stringify(m)}`);

    // 4. the bare scan, same page size as the engine's scan: without read-ahead, as far ahead as the
    // engine's scan (SOURCE_READ_AHEAD, jobs/scan.ts) and a chunk's worth of pages ahead (run with the
    // re-runs, below).
    const bareScan = async (prefetch) => {
      const stopProfile = prefetch === chunkPages ? await startProfile() : async () => undefined;
      const cpu0 = process.cpuUsage();
      const tb = performance.now();
      let bare = 0;
      const elu0 = performance.eventLoopUtilization();
      for await (const _ of engine.source().scan({ pageSize: engine.settings.pageSize, prefetch })) bare++;
      if (bare !== n) throw new Error(`bare scan read ${bare} of ${n}`);
      const elu = performance.eventLoopUtilization(elu0);
      console.error(
        `${n}: bare scan ${prefetch} ahead: event loop active ${Math.round(elu.active)} ms, idle ${Math.round(elu.idle)} ms`,
      );
      const result = { s: (performance.now() - tb) / 1000, cpuS: cpuSeconds(cpu0) };
      await stopProfile(`bare-ahead-${n}`);
      return result;
    };
    const chunkPages = Math.max(1, Math.ceil(engine.settings.chunkSize / engine.settings.pageSize));
    // 5. the unchanged re-run, twice: the first after the state was written compares every user and
    // concludes the blocks it finds unchanged (jobs/scan-blocks.ts); the second is the steady re-run
    // of a schedule, where those conclusions hold.
    await engine.startWorkers({ concurrency: 32 });
    const rerun = async (label) => {
      const before = await requestsAtSandbox(sandbox.env);
      const statsBefore = process.env.BENCH_CMDSTATS ? await redis.info('commandstats') : '';
      const stopProfile = await startProfile();
      const [sandboxCpu0, redisCpu0] = [procCpuSeconds(sandbox.child.pid), await redisCpuSeconds(redis)];
      const cpuR = process.cpuUsage();
      const elu0 = performance.eventLoopUtilization();
      const tr = Date.now();
      const runId = await startRun(engine, { kind: 'scheduled' });
      // The run's seen set (deletion detection, src/store/deletions.ts) at its largest: it is dropped
      // when the run ends, so it is sampled while the run lasts (MEMORY USAGE, every 50 ms).
      let seenPeak = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const b = Number((await redis.call('MEMORY', 'USAGE', engine.layout.runSeen(runId))) ?? 0);
          if (b > seenPeak) seenPeak = b;
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      const run = await waitForRun(engine, runId, { pollMs: 100 }).finally(() => {
        sampling = false;
      });
      await sampler;
      // From the request to the run's own end (its record's endedAt, this process's clock): the poll's
      // 100 ms granularity is not the engine's time.
      const s = (run.endedAt - tr) / 1000;
      const cpuS = cpuSeconds(cpuR);
      const sandboxCpuS = procCpuSeconds(sandbox.child.pid) - sandboxCpu0;
      const redisCpuS = (await redisCpuSeconds(redis)) - redisCpu0;
      // The main thread's event loop: active (running, or runnable and preempted) against idle (waiting).
      const elu = performance.eventLoopUtilization(elu0);
      console.error(
        `${n}: ${label} re-run CPU: engine ${cpuS.toFixed(1)} s, sandbox ${sandboxCpuS.toFixed(1)} s, Redis ${redisCpuS.toFixed(1)} s; event loop active ${Math.round(elu.active)} ms, idle ${Math.round(elu.idle)} ms`,
      );
      await stopProfile(`rerun-${label}-${n}`);
      if (statsBefore) console.error(cmdDelta(statsBefore, await redis.info('commandstats')));
      const sent = (await requestsAtSandbox(sandbox.env)) - before;
      const unchanged = Object.fromEntries(TARGETS.map((t) => [t, run.targets[t].outcomes.unchanged]));
      console.error(
        `${n}: ${label} re-run ${run.status} in ${s.toFixed(1)} s, ${sent} requests, ${JSON.stringify(unchanged)}; seen set at most ${seenPeak} B`,
      );
      if (run.status !== 'completed' || sent !== 0 || run.enqueued !== 0)
        throw new Error(`${label} re-run: ${run.status}, ${sent} requests, ${run.enqueued} jobs`);
      // Prelude: the users it does not know are skipped by their fresh unlinked marker (no lookup).
      const skipped = { prelude: run.targets.prelude.outcomes.unlinked ?? 0 };
      for (const t of TARGETS)
        if (unchanged[t] + (skipped[t] ?? 0) !== n)
          throw new Error(`${label} re-run: ${t} found ${unchanged[t]} of ${n} unchanged`);
      return { s, cpuS, sandboxCpuS, redisCpuS, seenPeak };
    };
    const first = await rerun('first');
    // The steady re-run and the three bare scans, BENCH_REPEAT times in turn (the load of the machine
    // moves each run): the medians.
    const reps = [];
    for (let i = 0; i < repeat; i++) {
      const steady = await rerun('steady');
      const none = await bareScan(0);
      const one = await bareScan(engine.settings.readAhead);
      const ahead = await bareScan(chunkPages);
      reps.push({ none, one, ahead, steady });
      console.error(
        `${n}: bare scan ${none.s.toFixed(2)} s without read-ahead, ${one.s.toFixed(2)} s ${engine.settings.readAhead} pages ahead (SOURCE_READ_AHEAD), ${ahead.s.toFixed(2)} s ${chunkPages} pages ahead`,
      );
    }
    const median = (pick) => {
      const sorted = reps.map(pick).sort((a, b) => a.s - b.s);
      return sorted[(sorted.length - 1) >> 1];
    };
    const bareNone = median((r) => r.none);
    const bareOne = median((r) => r.one);
    const bareChunk = median((r) => r.ahead);
    const steady = median((r) => r.steady);
    // The ratio's base is the fastest of the three bare scans (by their medians), its CPU time that scan's.
    const fastest = [bareNone, bareOne, bareChunk].reduce((a, b) => (b.s < a.s ? b : a));
    const bareS = fastest.s;
    const bareCpuS = fastest.cpuS;
    // Steady bytes after the re-runs: the blocks' conclusions and the mutation counters are part of
    // what a schedule keeps (the re-runs add no history: nothing changed).
    const afterRun = await measure(prefix);
    const kept = ['state', 'stateKeys', 'unlinked', 'links', 'history', 'deletions', 'blocks'];
    const perUser = Object.fromEntries(kept.map((k) => [k, (afterRun.bytes[k] ?? 0) / n]));
    const steadyPerUser = Object.values(perUser).reduce((a, b) => a + b, 0);
    console.error(`${n}: after the re-runs ${JSON.stringify(afterRun)}`);
    return {
      n,
      linked: linkedN,
      unlinked: unlinkedN,
      perUser,
      steadyPerUser,
      perRun: m.bytes.run ?? 0,
      itemsKept: await redis.llen(engine.layout.runItems(runId)),
      bytes: m.bytes,
      keys: m.keys,
      afterRerun: afterRun.bytes,
      bareUsersPerS: n / bareS,
      bareNoPrefetchUsersPerS: n / bareNone.s,
      bareOwnUsersPerS: n / bareOne.s,
      readAhead: engine.settings.readAhead,
      bareChunkUsersPerS: n / bareChunk.s,
      rerunUsersPerS: n / steady.s,
      firstRerunUsersPerS: n / first.s,
      bareS,
      rerunS: steady.s,
      firstRerunS: first.s,
      bareCpuS,
      rerunCpuS: steady.cpuS,
      firstRerunCpuS: first.cpuS,
      rerunSandboxCpuS: steady.sandboxCpuS,
      rerunRedisCpuS: steady.redisCpuS,
      seenPeak: Math.max(...reps.map((r) => r.steady.seenPeak)),
    };
  } finally {
    await engine.close();
    await clean(prefix);
    sandbox.child.kill('SIGTERM');
  }
}

/** User + system CPU seconds of this process since `from`. */
function cpuSeconds(from) {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1e6;
}

/**
 * BENCH_PROFILE=<dir>: a CPU profile of this process during the re-run only (open it in Chrome DevTools).
 * BENCH_GC=1: the garbage collections over the same span, printed (bench/lib/gc-watch.mjs).
 */
async function startProfile() {
  const stopGc = process.env.BENCH_GC === '1' ? watchGc() : undefined;
  const stopCpu = await startCpuProfile();
  return async (name) => {
    if (stopGc) console.error(`${name}: garbage collections: ${stopGc()}`);
    await stopCpu(name);
  };
}

async function startCpuProfile() {
  const dir = process.env.BENCH_PROFILE;
  if (!dir) return async () => undefined;
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
  // BENCH_HEAP_PROFILE=1: also V8's sampling heap profiler (what allocates), `<name>.heapprofile`.
  const heap = process.env.BENCH_HEAP_PROFILE === '1';
  if (heap)
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 16_384,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  return async (name) => {
    if (heap) {
      const { profile: sampled } = await session.post('HeapProfiler.stopSampling');
      const { mkdirSync, writeFileSync } = await import('node:fs');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${name}.heapprofile`), JSON.stringify(sampled));
    }
    const { profile } = await session.post('Profiler.stop');
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  };
}

async function requestsAtSandbox(env) {
  let total = 0;
  for (const t of TARGETS)
    total += (await (await fetch(`${env[`${t.toUpperCase()}_URL`]}/__sandbox/counters`)).json()).total;
  return total;
}

const metrics = [];
const notes = [];
try {
  const { compared, linked, unlinked } = await checkFormat();
  notes.push(
    `format: the ${compared} state values a real backfill of ${checkUsers} users wrote are byte for byte what the direct writer encodes (time prefix aside); it linked ${linked} users in Prelude and marked ${unlinked} unlinked, exactly those the direct writer's lookups find and miss`,
  );
  for (const n of sizes) {
    const r = await atSize(n);
    const label = n.toLocaleString('en-US');
    metrics.push(
      {
        name: `${label} users: steady bytes per known user (state + key lists + Prelude links + unlinked markers + history + block conclusions and mutation counters, 3 targets)`,
        value: Math.round(r.steadyPerUser),
        unit: 'B',
        better: 'lower',
        detail: {
          linked: r.linked,
          unlinked: r.unlinked,
          perUser: r.perUser,
          bytes: r.bytes,
          keys: r.keys,
          afterRerun: r.afterRerun,
        },
      },
      {
        name: `${label} users: state bytes per known user`,
        value: Math.round(r.perUser.state + r.perUser.stateKeys),
        unit: 'B',
        better: 'lower',
      },
      {
        name: `${label} users: Prelude links and unlinked markers, bytes per known user`,
        value: Math.round(r.perUser.links + r.perUser.unlinked),
        unit: 'B',
        better: 'lower',
      },
      {
        name: `${label} users: block conclusions and mutation counters, bytes per known user`,
        value: Number(r.perUser.blocks.toFixed(1)),
        unit: 'B',
        better: 'lower',
      },
      {
        name: `${label} users: history bytes per known user`,
        value: Math.round(r.perUser.history),
        unit: 'B',
        better: 'lower',
      },
      {
        name: `${label} users: run record bytes (first backfill, ${r.itemsKept} items kept)`,
        value: r.perRun,
        unit: 'B',
        better: 'lower',
      },
      {
        name: `${label} users: bare source scan, ${r.readAhead} pages ahead (the engine scan's read-ahead, SOURCE_READ_AHEAD)`,
        value: Math.round(r.bareOwnUsersPerS),
        unit: 'users/s',
        better: 'higher',
      },
      {
        name: `${label} users: bare source scan, a chunk's worth of pages ahead`,
        value: Math.round(r.bareChunkUsersPerS),
        unit: 'users/s',
        better: 'higher',
      },
      {
        name: `${label} users: bare source scan without read-ahead`,
        value: Math.round(r.bareNoPrefetchUsersPerS),
        unit: 'users/s',
        better: 'higher',
      },
      {
        name: `${label} users: first unchanged re-run after the state was written (compares every user, concludes the blocks)`,
        value: Math.round(r.firstRerunUsersPerS),
        unit: 'users/s',
        better: 'higher',
        detail: { firstRerunS: r.firstRerunS, firstRerunCpuS: r.firstRerunCpuS },
      },
      {
        name: `${label} users: unchanged re-run (3 targets, 0 requests; the blocks concluded)`,
        value: Math.round(r.rerunUsersPerS),
        unit: 'users/s',
        better: 'higher',
      },
      {
        name: `${label} users: re-run / bare scan`,
        // Against the fastest of the three bare scans (the load of the machine moves each).
        value: Number((r.rerunUsersPerS / r.bareUsersPerS).toFixed(2)),
        unit: 'ratio',
        better: 'higher',
        detail: { bareS: r.bareS, rerunS: r.rerunS },
      },
      {
        name: `${label} users: re-run / bare scan ${r.readAhead} pages ahead (the engine scan's own read-ahead)`,
        value: Number((r.rerunUsersPerS / r.bareOwnUsersPerS).toFixed(2)),
        unit: 'ratio',
        better: 'higher',
      },
      {
        name: `${label} users: first re-run / bare scan`,
        value: Number((r.firstRerunUsersPerS / r.bareUsersPerS).toFixed(2)),
        unit: 'ratio',
        better: 'higher',
      },
      {
        name: `${label} users: re-run / bare scan, by CPU time of the engine process`,
        value: Number((r.bareCpuS / r.rerunCpuS).toFixed(2)),
        unit: 'ratio',
        better: 'higher',
        detail: {
          bareCpuS: r.bareCpuS,
          rerunCpuS: r.rerunCpuS,
          rerunSandboxCpuS: r.rerunSandboxCpuS,
          rerunRedisCpuS: r.rerunRedisCpuS,
        },
      },
      {
        name: `${label} users: the steady re-run's seen set at its largest (deletion detection; dropped when the run ends)`,
        value: r.seenPeak,
        unit: 'B',
        better: 'lower',
      },
    );
  }
  notes.push(
    'state written directly (StateStore.encode) for every user in Sunshine and Zephr, and in Prelude for the users its batch_lookup finds (linked by LinkStore.addFound); the others get an unlinked marker, as a real backfill leaves them (detail: linked / unlinked)',
    'history: only users with a kept item have one (RUN_ITEMS_MAX per target, default 10,000): at 1,000,000 users most known users have none',
    're-run: engine in this process (dist/, concurrency 32), sandbox in another, deletion detection included; bare scan: the same source connector paging the same sandbox, doing nothing',
    're-runs: the first after the state was written compares every user and concludes the blocks it finds unchanged (jobs/scan-blocks.ts); the second, the steady re-run of a schedule, counts the concluded blocks without reading their states; steady bytes are measured after both (block conclusions and mutation counters included)',
    `load average when it ended: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} (other processes on the machine lower the figures)`,
  );
} finally {
  await redis.quit();
}
writeResult({
  name: 'redis-scale',
  description: `Redis at scale (issue 11.4): steady bytes per known user and the unchanged re-run against a bare source scan, at ${sizes.map((n) => n.toLocaleString('en-US')).join(' and ')} sandbox users.`,
  metrics,
  notes,
});
