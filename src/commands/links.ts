import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadRedisConfig } from '../config/load.js';
import { parseLinkCsv } from '../connectors/prelude/links-csv.js';
import { ConfigError } from '../core/config-error.js';
import { createLogger } from '../log.js';
import { createRedisConnection } from '../store/connection.js';
import { createLinkStore, type LinkStore, linksKey } from '../store/links.js';
import { RedisErrorLog, whenRedisReady } from '../store/redis-open.js';

/**
 * `profile-sync links import|list|count|remove prelude ...`: the Prelude link table (source user id ->
 * Prelude user id, src/store/links.ts). Only Prelude needs one: Sunshine keys profiles by
 * our own id (external_id) and Zephr by the JWT subject, which is our id too.
 */

const TARGETS = ['prelude'];

function checkTarget(target: string): void {
  if (!TARGETS.includes(target)) {
    throw new ConfigError(`links: unknown target '${target}'; only 'prelude' has a link table`);
  }
}

async function withStore<T>(fn: (store: LinkStore, key: string) => Promise<T>): Promise<T> {
  const config = loadRedisConfig(); // only Redis: no vendor credentials needed
  // Through the store, so a Redis Cluster (REDIS_CLUSTER) works too (issue 9).
  const redis = createRedisConnection({ ...config.redis, maxRetriesPerRequest: 1, lazyConnect: true });
  new RedisErrorLog(createLogger({ level: config.logLevel }), config.redis.url).watch(redis, 'connection');
  try {
    await whenRedisReady(redis, config.redis.url); // exit 2 when Redis refuses the credentials
    return await fn(createLinkStore(redis, config.redis.prefix), linksKey(config.redis.prefix));
  } finally {
    redis.disconnect();
  }
}

export function registerLinks(program: Command): void {
  const links = program
    .command('links')
    .description('Manage the Prelude link table (source id -> Prelude user id)');

  links
    .command('import')
    .description(
      'Import a CSV "source_id,prelude_user_id" (header required); nothing is stored if any row is bad',
    )
    .argument('<target>', 'prelude')
    .argument('<file>', 'CSV file (RFC 4180, UTF-8, BOM tolerated)')
    .option('--replace', 'drop the existing table first (atomically with the import)')
    .action(async (target: string, file: string, opts: { replace?: boolean }) => {
      checkTarget(target);
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        process.stderr.write(`links import: cannot read ${file} (${(e as NodeJS.ErrnoException).code})\n`);
        process.exitCode = 1;
        return;
      }
      const { rows, errors } = parseLinkCsv(text);
      if (errors.length) {
        const shown = errors.slice(0, 50);
        process.stderr.write(
          `links import: ${errors.length} bad row(s) in ${file}, nothing imported:\n  ${shown.join('\n  ')}\n` +
            (errors.length > shown.length ? `  ... and ${errors.length - shown.length} more\n` : ''),
        );
        process.exitCode = 1;
        return;
      }
      await withStore(async (store, key) => {
        const n = await store.import(rows, { replace: opts.replace });
        const total = await store.count();
        process.stdout.write(`imported ${n} link(s) into ${key}; the table now holds ${total}\n`);
      });
    });

  links
    .command('list')
    .description('Print links as CSV, with how (import, external_id, email, create) and when each was found')
    .argument('<target>', 'prelude')
    .option('--limit <n>', 'at most this many', (v) => Number.parseInt(v, 10))
    .option('--ids-only', 'only source_id,prelude_user_id (the form `links import` reads)')
    .action(async (target: string, opts: { limit?: number; idsOnly?: boolean }) => {
      checkTarget(target);
      await withStore(async (store) => {
        process.stdout.write(
          opts.idsOnly ? 'source_id,prelude_user_id\n' : 'source_id,prelude_user_id,how,found_at\n',
        );
        let n = 0;
        let page: [string, string][] = [];
        const flush = async () => {
          const info = opts.idsOnly ? new Map() : await store.info(page.map(([id]) => id));
          for (const [sourceId, preludeId] of page) {
            const i = info.get(sourceId);
            const extra = opts.idsOnly ? '' : `,${i?.how ?? ''},${i ? new Date(i.at).toISOString() : ''}`;
            process.stdout.write(`${csvField(sourceId)},${csvField(preludeId)}${extra}\n`);
          }
          page = [];
        };
        for await (const entry of store.entries()) {
          if (opts.limit !== undefined && n >= opts.limit) break;
          page.push(entry);
          n++;
          if (page.length >= 1000) await flush();
        }
        await flush();
      });
    });

  links
    .command('count')
    .description('Print how many links the table holds')
    .argument('<target>', 'prelude')
    .action(async (target: string) => {
      checkTarget(target);
      await withStore(async (store) => {
        process.stdout.write(`${await store.count()}\n`);
      });
    });

  links
    .command('remove')
    .description('Remove the links of these source ids')
    .argument('<target>', 'prelude')
    .argument('<ids...>', 'source user ids')
    .action(async (target: string, ids: string[]) => {
      checkTarget(target);
      await withStore(async (store) => {
        const n = await store.remove(ids);
        process.stdout.write(`removed ${n} of ${ids.length} link(s)\n`);
      });
    });
}

/** RFC 4180: quote when the field holds a comma, quote, CR or LF (or leading/trailing space). */
export function csvField(value: string): string {
  return /[",\r\n]|^\s|\s$/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}
