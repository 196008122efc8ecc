#!/usr/bin/env node
// Issue 11.3/11.4: Redis bytes per known user (state + history, three targets) and per run, after a
// first backfill of BENCH_USERS (default 1,000) sandbox users with limits off, measured with
// `MEMORY USAGE` over every key of a fresh prefix (grouped by what the key holds). A second backfill
// under another prefix with RUN_ITEMS_MAX=BENCH_ITEMS_MAX (default 100) shows the bounded run record.
// Uses the shared Redis (REDIS_URL, default 127.0.0.1:6379) and deletes its prefixes afterwards.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { writeResult } from './lib/report.mjs';
import { startSandboxProcess } from './lib/sandbox-process.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const users = Number(process.env.BENCH_USERS ?? 1000);
const itemsMax = Number(process.env.BENCH_ITEMS_MAX ?? 100);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const { RedisLayout } = await import(join(root, 'dist', 'src', 'store', 'redis-layout.js'));

function backfill(env) {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [join(root, 'dist', 'cli.js'), 'backfill', '--json', '--concurrency', '16'],
      { env: { PATH: process.env.PATH, ...env }, maxBuffer: 64 << 20, timeout: 1_800_000 },
      (err, stdout, stderr) => (err && !stdout ? reject(new Error(stderr)) : resolve(JSON.parse(stdout))),
    );
  });
}

/** What a key holds, from its name under `{p}:`. */
function group(rest) {
  if (rest.startsWith('state:')) return 'state';
  if (rest.startsWith('unlinked:')) return 'unlinked';
  if (rest === 'mutations' || rest === 'blocks') return 'blocks';
  if (rest.startsWith('links:')) return 'links';
  if (rest.startsWith('history:') || /^run:[^:]+:users:/.test(rest)) return 'history';
  if (/^run:[^:]+:items$/.test(rest)) return 'runItems';
  if (/^run:[^:]+$/.test(rest) || rest.startsWith('run:') || rest === 'runs') return 'run';
  if (rest.startsWith('scan:') || rest.startsWith('sync-')) return 'bullmq';
  return 'other';
}

async function measure(redis, prefix) {
  const base = `{${prefix}}:`;
  const bytes = {};
  const keys = {};
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${base}*`, 'COUNT', 1000);
    cursor = next;
    for (const k of batch) {
      const g = group(k.slice(base.length));
      const b = Number(await redis.memory('USAGE', k, 'SAMPLES', 0)) || 0;
      bytes[g] = (bytes[g] ?? 0) + b;
      keys[g] = (keys[g] ?? 0) + 1;
    }
  } while (cursor !== '0');
  return { bytes, keys };
}

async function clean(redis, prefix) {
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `{${prefix}}:*`, 'COUNT', 1000);
    cursor = next;
    if (batch.length) await redis.unlink(...batch);
  } while (cursor !== '0');
}

const startSandbox = () => startSandboxProcess(['--users', String(users), '--rate-limit', '0']);
let sandbox = await startSandbox();
const redis = new Redis(redisUrl);
const prefixes = [];
try {
  const env = (extra) => {
    const prefix = `bench-bytes-${randomBytes(4).toString('hex')}`;
    prefixes.push(prefix);
    return {
      ...sandbox.env,
      REDIS_URL: redisUrl,
      PROFILE_SYNC_PREFIX: prefix,
      LOG_LEVEL: 'error',
      SUNSHINE_RATE_LIMIT: '1000000',
      ZEPHR_RATE_LIMIT: '1000000',
      PRELUDE_RATE_LIMIT: '1000000',
      ...extra,
    };
  };
  const e1 = env({});
  const run1 = await backfill(e1);
  const m1 = await measure(redis, e1.PROFILE_SYNC_PREFIX);
  const layout = new RedisLayout(e1.PROFILE_SYNC_PREFIX);
  m1.linked = await redis.hlen(layout.links());
  m1.unlinked = await redis.hlen(layout.unlinked('prelude'));
  // A fresh sandbox: the second backfill is a first backfill too (every user created).
  sandbox.child.kill('SIGTERM');
  sandbox = await startSandbox();
  const e2 = env({ RUN_ITEMS_MAX: String(itemsMax) });
  const run2 = await backfill(e2);
  const m2 = await measure(redis, e2.PROFILE_SYNC_PREFIX);
  const items = (r) =>
    Object.values(r.targets).reduce((n, t) => n + (t.itemsKept ?? 0), 0) ||
    Object.values(r.targets).reduce(
      (n, t) => n + t.created + t.updated + t.unlinked + t.failed + t.rejected,
      0,
    );
  // State: the targets' state hashes and key lists, Prelude's links and unlinked markers.
  for (const m of [m1, m2])
    m.bytes.state = (m.bytes.state ?? 0) + (m.bytes.links ?? 0) + (m.bytes.unlinked ?? 0);
  const perUser = (g) => Math.round((m1.bytes[g] ?? 0) / users);
  const metrics = [
    { name: 'state bytes per known user (3 targets)', value: perUser('state'), unit: 'B', better: 'lower' },
    {
      name: 'of the state: Prelude links (with how and when) + unlinked markers, bytes per known user',
      value: perUser('links') + perUser('unlinked'),
      unit: 'B',
      better: 'lower',
      detail: { linked: m1.linked, unlinked: m1.unlinked },
    },
    { name: 'history bytes per known user', value: perUser('history'), unit: 'B', better: 'lower' },
    {
      name: 'state + history bytes per known user',
      value: perUser('state') + perUser('history'),
      unit: 'B',
      better: 'lower',
      detail: { users, keys: m1.keys, bytes: m1.bytes },
    },
    {
      name: `run items bytes, first backfill (RUN_ITEMS_MAX=10000: ${items(run1)} items kept)`,
      value: m1.bytes.runItems ?? 0,
      unit: 'B',
      better: 'lower',
    },
    {
      name: `run items bytes, same backfill with RUN_ITEMS_MAX=${itemsMax} (${items(run2)} items kept)`,
      value: m2.bytes.runItems ?? 0,
      unit: 'B',
      better: 'lower',
      detail: { keys: m2.keys, bytes: m2.bytes, targets: run2.targets },
    },
    {
      // Issue 11: a fixed 128 KiB string (not per user) and the scan's block conclusions (none yet
      // after a first backfill: the first re-run concludes them).
      name: 'mutation counters and block conclusions, bytes (fixed, not per user)',
      value: m1.bytes.blocks ?? 0,
      unit: 'B',
      better: 'lower',
    },
    {
      name: `history bytes per known user with RUN_ITEMS_MAX=${itemsMax}`,
      value: Math.round((m2.bytes.history ?? 0) / users),
      unit: 'B',
      better: 'lower',
    },
  ];
  writeResult({
    name: 'redis-bytes',
    description: `Redis MEMORY USAGE after a first backfill of ${users} sandbox users (three targets, limits off)`,
    metrics,
    notes: [
      "state = state:<target> hashes (+ key lists) + Prelude's unlinked markers and links (detail.bytes.links / .unlinked; the link share in the links metric's detail); history = the runs' history index run:<id>:users:<b> (issue 11.4; history:<user> zsets before), only for kept items.",
      'BullMQ bytes (completed jobs kept an hour) are in detail.bytes.bullmq, not per known user.',
    ],
  });
} finally {
  for (const p of prefixes) await clean(redis, p);
  await redis.quit();
  sandbox.child.kill('SIGTERM');
}
