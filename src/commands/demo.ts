import type { Command } from 'commander';
import { JOBS } from '../../jobs/index.js';
import * as runActions from '../../jobs/run-actions.js';
import { loadConfig, loadRedisConfig, readEnv } from '../config/load.js';
import { ConfigError } from '../core/config-error.js';
import { TARGET_IDS } from '../core/targets.js';
import { createLogger } from '../log.js';
import { Engine } from '../queue/engine.js';
import { type Sandbox, startSandbox } from '../sandbox/index.js';
import { createRedisConnection, type RedisConnectionOptions, scanKeys } from '../store/connection.js';
import { RedisLayout } from '../store/redis-layout.js';
import type { RunRecord } from '../store/run-record.js';
import { type DemoRedis, demoRedis, redactUrl } from './demo-redis.js';
import { parsePositiveInt, parseRate } from './options.js';
import { printRun } from './print/print-run.js';
import { createProgressReporter } from './print/progress.js';
import { formatItem } from './print/run-report.js';

/** The demo's own key prefix: never `PROFILE_SYNC_PREFIX`, so it cannot touch a real deployment's keys. */
export const DEMO_PREFIX = 'profile-sync-demo';

/**
 * The sandbox answers up to 60,000 requests a minute per credential (burst 1,000) and the engine keeps
 * each target at 30,000 a minute: far above the vendors' real limits, so 1,000 users x 3 targets are
 * written in seconds, and below the sandbox's, so the demo shows no 429 noise.
 */
const SANDBOX_LIMIT = { perMinute: 60_000, burst: 1_000 };
const ENGINE_LIMIT = '30000';

interface DemoFlags {
  users: string;
  change: string;
}

/**
 * Deletes every key under the demo's prefix: state left by an earlier demo would make the fresh sandbox
 * look synced. Through the store (connection, `scanKeys`), so a Redis Cluster works too (issue 9).
 */
async function clearPrefix(redisOpts: RedisConnectionOptions, prefix: string): Promise<void> {
  const redis = createRedisConnection({ ...redisOpts, maxRetriesPerRequest: 1 });
  // Never ioredis's own print (an error carries the failed command); the commands below fail anyway.
  redis.on('error', () => undefined);
  try {
    const keys = await scanKeys(redis, new RedisLayout(prefix).allKeys());
    // One hash tag, one slot: a multi-key DEL is allowed on a Cluster too.
    for (let i = 0; i < keys.length; i += 1000) await redis.del(...keys.slice(i, i + 1000));
  } finally {
    redis.disconnect();
  }
}

async function mutateSource(sandbox: Sandbox, share: number): Promise<string[]> {
  const res = await fetch(`${sandbox.urls.source}/__sandbox/users/mutate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ share, seed: 2 }),
  });
  if (!res.ok) throw new Error(`sandbox mutate: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { changed: string[] }).changed;
}

function written(run: RunRecord): string {
  return TARGET_IDS.filter((t) => run.targets[t])
    .map((t) => {
      const o = run.targets[t]!.outcomes;
      return `${t} ${o.created + o.updated}`;
    })
    .join(', ');
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'The main job on a sandbox: backfill 1,000 users into Sunshine, Zephr and Prelude, change 5% in the source, run again',
    )
    .option('--users <n>', 'users in the sandbox source', '1000')
    .option('--change <share>', 'share of source users changed between the two runs', '0.05')
    .action(async (flags: DemoFlags) => {
      const users = parsePositiveInt('--users', flags.users, 1_000_000)!;
      const change = parseRate('--change', flags.change)!;
      const env = readEnv([
        'REDIS_URL',
        'REDIS_CLUSTER',
        'REDIS_CLUSTER_NODES',
        'PROFILE_SYNC_DEMO_PREFIX',
        'LOG_LEVEL',
      ]);
      const prefix = env.PROFILE_SYNC_DEMO_PREFIX ?? DEMO_PREFIX;
      try {
        new RedisLayout(prefix);
      } catch (err) {
        throw new ConfigError(`PROFILE_SYNC_DEMO_PREFIX: ${(err as Error).message}`);
      }
      const out = (line = '') => process.stdout.write(`${line}\n`);

      const redis: DemoRedis = await demoRedis(env.REDIS_URL);
      // REDIS_CLUSTER applies to the Redis of REDIS_URL, never to one the demo started itself.
      const clusterEnv = redis.throwaway
        ? {}
        : { REDIS_CLUSTER: env.REDIS_CLUSTER, REDIS_CLUSTER_NODES: env.REDIS_CLUSTER_NODES };
      let sandbox: Sandbox | undefined;
      let engine: Engine | undefined;
      const cleanup = async () => {
        await engine?.close().catch(() => undefined);
        await sandbox?.close().catch(() => undefined);
        await redis.stop();
      };
      const onSignal = () => {
        process.stderr.write('\ninterrupted: stopping the demo\n');
        void cleanup().finally(() => process.exit(130));
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        await clearPrefix(loadRedisConfig({ REDIS_URL: redis.url, ...clusterEnv }).redis, prefix);
        sandbox = await startSandbox({ port: 0, users, rateLimit: SANDBOX_LIMIT });
        const config = loadConfig({
          ...sandbox.env,
          REDIS_URL: redis.url,
          ...clusterEnv,
          PROFILE_SYNC_PREFIX: prefix,
          LOG_LEVEL: env.LOG_LEVEL ?? 'warn',
          SUNSHINE_RATE_LIMIT: ENGINE_LIMIT,
          ZEPHR_RATE_LIMIT: ENGINE_LIMIT,
          PRELUDE_RATE_LIMIT: ENGINE_LIMIT,
        });
        out(
          `profile-sync demo: a sandbox with ${users} users (source, Sunshine, Zephr, Prelude on loopback)`,
        );
        out(
          `Redis: ${redis.throwaway ? `a throwaway redis-server at ${redis.url} (stopped when the demo ends)` : redactUrl(redis.url)}, key prefix ${prefix}`,
        );
        out();
        engine = await Engine.create({
          jobs: JOBS,
          config,
          logger: createLogger({ level: config.logLevel }),
        });
        await engine.startWorkers({ concurrency: 16 });

        const runOnce = async (title: string): Promise<RunRecord> => {
          out(`== ${title}`);
          const runId = await runActions.startRun(engine!, { kind: 'backfill' });
          const progress = createProgressReporter();
          try {
            return await runActions.waitForRun(engine!, runId, {
              pollMs: 250,
              onProgress: (r) => progress.update(r),
            });
          } finally {
            progress.stop();
          }
        };

        const first = await runOnce('1. backfill: every user into every target');
        printRun(first, { config });
        out();
        const changed = await mutateSource(sandbox, change);
        out(
          `== 2. ${changed.length} users (${Math.round(change * 100)}%) changed in the source (names, emails); running again`,
        );
        const second = await runOnce('   second run: only the changed users are written');
        printRun(second, { config });
        out();
        out(`${changed.length} users changed in the source; the second run wrote ${written(second)};`);
        out('every other user was `unchanged` and cost no request.');
        const items = (await engine.runs.items(second.id, 0, 50)).filter((i) => i.outcome === 'updated');
        if (items.length) {
          out();
          out('Three of the recorded changes (emails and names masked, as in every run record):');
          for (const item of items.slice(0, 3)) out(formatItem(item).join('\n'));
        }
        out();
        if (redis.throwaway) {
          out('The runs were recorded in a throwaway Redis that stops with the demo, so they are gone now.');
          out(
            'To keep them for `profile-sync runs` and `profile-sync report <runId>`, give the demo a Redis:',
          );
          out('  REDIS_URL=redis://127.0.0.1:6379 npm run demo');
        } else {
          out('Look at the runs (they stay in Redis under the demo prefix):');
          out(`  export REDIS_URL=${redactUrl(redis.url)} PROFILE_SYNC_PREFIX=${prefix}`);
          out('  profile-sync runs');
          out(`  profile-sync report ${second.id}`);
        }
        const ok = [first, second].every(
          (r) => r.status === 'completed' && Object.values(r.targets).every((c) => c.outcomes.failed === 0),
        );
        process.exitCode = ok ? 0 : 1;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await cleanup();
      }
    });
}
