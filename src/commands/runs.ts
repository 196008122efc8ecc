import type { Command } from 'commander';
import { loadRedisConfig } from '../config/load.js';
import { createLogger } from '../log.js';
import { RedisLayout } from '../store/redis-layout.js';
import { openRedis } from '../store/redis-open.js';
import { RunStore } from '../store/run-store.js';
import { parsePositiveInt } from './options.js';
import { formatRunsList, runSummaryJson } from './print/run-report.js';

/**
 * Opens the run store on the configured Redis for a read-only command. Only the Redis settings are
 * loaded (`loadRedisConfig`): reading records needs no source or target credentials. Retention is
 * applied by whoever creates runs, never here, so its defaults are fine.
 */
export async function withRunStore<T>(fn: (runs: RunStore) => Promise<T>): Promise<T> {
  const config = loadRedisConfig();
  // Exit 2 "Redis refused the credentials" rather than reconnect for ever; errors logged without secrets.
  const { redis } = await openRedis(config.redis, createLogger({ level: config.logLevel }));
  try {
    return await fn(new RunStore(redis, new RedisLayout(config.redis.prefix)));
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

export function registerRuns(program: Command): void {
  program
    .command('runs')
    .description('List recorded runs, newest first')
    .option('--limit <n>', 'how many (default 20)')
    .option('--json', 'JSON on stdout')
    .action(async (flags: { limit?: string; json?: boolean }) => {
      const limit = parsePositiveInt('--limit', flags.limit, 10_000) ?? 20;
      await withRunStore(async (runs) => {
        const list = await runs.list(limit);
        if (flags.json)
          process.stdout.write(
            `${JSON.stringify(
              list.map((r) => runSummaryJson(r)),
              null,
              2,
            )}\n`,
          );
        else process.stdout.write(list.length ? `${formatRunsList(list)}\n` : 'no runs recorded\n');
      });
    });
}
