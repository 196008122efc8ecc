// A child process of bench/plain-vs-engine.bench.mjs, configured by its environment (the sandbox's
// exports, REDIS_URL, PROFILE_SYNC_PREFIX, ...).
//   node throughput-child.mjs engine <concurrency> <scan 0|1>: an engine worker process (sync workers
//     for every target, the scan worker too when asked); prints `ready`, stops on the message `stop`.
//   node throughput-child.mjs plain <concurrency>: waits for the message `go`, then the plain loop:
//     the source paged as the scan pages it, and per user and target the mapping and one request with
//     plain fetch (the owned modes' PUT, Prelude's PATCH), `concurrency` requests in flight per target;
//     Prelude's users are first found by `batch_lookup`, 100 a request, as any client of the real
//     service must (its ids are its own `usr_` ids), and only the found ones are PATCHed;
//     answers {writes, failed, lookups, seconds} and exits. `writes` counts 2xx PUT/PATCH answers only.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dist, distJobs } from './dist.mjs';
import { watchGc } from './gc-watch.mjs';

const { loadConfig } = await import(dist('config/load.js'));
const { createLogger } = await import(dist('log.js'));
const [mode, concurrencyArg, scanArg] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
const config = loadConfig(process.env);
const logger = createLogger({ level: 'warn' });

if (mode === 'engine') {
  // BENCH_COUNT_RT=1: count this process's Redis round trips (bench/lib/redis-count.mjs), printed on stop.
  let counter;
  if (process.env.BENCH_COUNT_RT === '1') {
    const { Redis } = await import('ioredis');
    const { installRedisCounter } = await import('./redis-count.mjs');
    counter = installRedisCounter(Redis);
  }
  const { Engine } = await import(dist('queue/engine.js'));
  const { JOBS } = await import(distJobs('index.js'));
  const engine = await Engine.create({ jobs: JOBS, config, logger });
  await engine.startWorkers({ concurrency, scan: scanArg === '1' });
  // BENCH_GC=1: this process's garbage collections over the measured pass, printed on stop.
  // BENCH_HEAP_PROF=<dir>: V8's sampling heap profile of the measured pass (what allocates, collected
  // objects included), written on stop as <dir>/worker-<pid>-scan<0|1>.heapprofile.
  let stopGc;
  let session;
  if (process.env.BENCH_HEAP_PROF) {
    const { Session } = await import('node:inspector/promises');
    session = new Session();
    session.connect();
  }
  process.on('message', async (m) => {
    if (m === 'reset') {
      counter?.reset();
      if (process.env.BENCH_CHILD_STDOUT) process.stdout.write('--- measured pass\n');
      if (process.env.BENCH_GC === '1') stopGc = watchGc();
      await session?.post('HeapProfiler.startSampling', {
        samplingInterval: 4096,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
    }
    if (m !== 'stop') return;
    if (stopGc) process.stderr.write(`garbage collections of worker ${process.pid}: ${stopGc()}\n`);
    if (session) {
      const { profile } = await session.post('HeapProfiler.stopSampling');
      const file = join(process.env.BENCH_HEAP_PROF, `worker-${process.pid}-scan${scanArg}.heapprofile`);
      writeFileSync(file, JSON.stringify(profile));
    }
    if (counter) {
      const rows = [...counter.counts].sort((a, b) => b[1] - a[1]).slice(0, 25);
      process.stderr.write(
        `round trips of worker ${process.pid}:\n${rows.map(([k, n]) => `${n}\t${k}`).join('\n')}\n`,
      );
    }
    await engine.close();
    process.exit(0);
  });
  process.stdout.write('ready\n');
} else if (mode === 'plain') {
  const { createTargetConnectors } = await import(dist('connectors/registry.js'));
  const { createSourceConnector } = await import(dist('connectors/source/connector.js'));
  const { createJwtMinter } = await import(dist('connectors/zephr/jwt.js'));
  const connectors = createTargetConnectors(config, { logger });
  const source = createSourceConnector({ config: config.source, http: config.http }, { logger });
  const minter = createJwtMinter(config.targets.zephr.jwt);
  const sunshineAuth = `Basic ${Buffer.from(`${config.targets.sunshine.email}/token:${config.targets.sunshine.apiToken}`).toString('base64')}`;
  const auth = {
    sunshine: async () => ({ authorization: sunshineAuth }),
    zephr: async (userId) => ({ authorization: `Bearer ${await minter.mint(userId)}` }),
    prelude: async () => ({ authorization: `Bearer ${config.targets.prelude.apiKey}` }),
  };
  const base = {
    sunshine: config.targets.sunshine.url.replace(/\/+$/, ''),
    zephr: config.targets.zephr.url.replace(/\/+$/, ''),
    prelude: config.targets.prelude.url.replace(/\/+$/, ''),
  };
  const targets = Object.keys(connectors);
  const { parseUsers, matchLookup, LOOKUP_BATCH } = await import(dist('connectors/prelude/lookup.js'));
  const linkBy = config.targets.prelude.linkBy;
  async function loop() {
    const started = performance.now();
    let writes = 0;
    let failed = 0;
    let lookups = 0;
    /** Prelude: the users' `usr_` ids, by one plain-fetch batch_lookup per 100 users. */
    async function preludeLinks(users) {
      const links = new Map();
      for (let i = 0; i < users.length; i += LOOKUP_BATCH) {
        const batch = users.slice(i, i + LOOKUP_BATCH);
        const [req] = connectors.prelude.linker.planLookup(batch);
        if (!req) continue;
        const res = await fetch(`${base.prelude}${req.path}`, {
          method: req.method,
          headers: {
            ...(await auth.prelude()),
            'content-type': 'application/json',
            accept: 'application/json',
          },
          body: JSON.stringify(req.body),
        });
        lookups++;
        if (!res.ok) {
          await res.arrayBuffer();
          continue;
        }
        const answer = parseUsers(await res.json()) ?? [];
        for (const f of matchLookup(linkBy, batch, answer)) links.set(f.sourceId, f.preludeUserId);
      }
      return links;
    }
    let unlinked = [];
    // One bounded queue per target, fed by the source pages, drained by `concurrency` loops each.
    const queues = Object.fromEntries(targets.map((t) => [t, []]));
    let scanned = false;
    const wake = new Set();
    async function drain(t) {
      for (;;) {
        const item = queues[t].shift();
        if (!item) {
          if (scanned) return;
          await new Promise((r) => wake.add(r));
          continue;
        }
        const { user, linkedId } = item;
        const c = connectors[t];
        let next;
        try {
          next = c.map(user);
        } catch {
          failed++;
          continue;
        }
        for (const req of c.plan({ userId: user.id, next, previous: null, user, linkedId })) {
          const res = await fetch(`${base[t]}${req.path}`, {
            method: req.method,
            headers: {
              ...(await auth[t](user.id)),
              'content-type': 'application/json',
              accept: 'application/json',
            },
            body: req.body === undefined ? undefined : JSON.stringify(req.body),
          });
          await res.arrayBuffer();
          if (res.status >= 200 && res.status < 300) writes++;
          else failed++;
        }
      }
    }
    const loops = targets.flatMap((t) => Array.from({ length: concurrency }, () => drain(t)));
    const linkPrelude = async () => {
      const users = unlinked;
      unlinked = [];
      const links = await preludeLinks(users);
      for (const u of users) if (links.has(u.id)) queues.prelude.push({ user: u, linkedId: links.get(u.id) });
    };
    for await (const rec of source.scan({ pageSize: config.source.pageSize })) {
      if (!rec.ok) continue;
      for (const t of targets)
        if (t === 'prelude') unlinked.push(rec.user);
        else queues[t].push({ user: rec.user });
      if (unlinked.length >= LOOKUP_BATCH) await linkPrelude();
      for (const r of wake) r();
      wake.clear();
      // Keep memory flat like the engine's queue: let the loops catch up before reading on.
      while (targets.some((t) => queues[t].length > 4 * config.source.pageSize))
        await new Promise((r) => setTimeout(r, 5));
    }
    if (unlinked.length) await linkPrelude();
    scanned = true;
    for (const r of wake) r();
    await Promise.all(loops);
    const seconds = (performance.now() - started) / 1000;
    return { writes, failed, lookups, seconds };
  }
  // Each `go` runs the loop once more (the first is the warm-up) and answers its figures.
  process.on('message', async (m) => {
    if (m === 'go') process.send(await loop());
    if (m === 'stop') process.exit(0);
  });
  process.stdout.write('ready\n');
}
