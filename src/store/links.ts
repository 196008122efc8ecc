import type { Redis } from 'ioredis';
import { RedisLayout } from './redis-layout.js';

/**
 * The Prelude link table: source user id -> Prelude user id, for apps whose users are not known under
 * their source ids (seed 004's `UserID` is "prefixed with 'usr_'"). One Redis hash,
 * `{prefix}:links:prelude`: the `{prefix}` braces are a Redis Cluster hash tag, so the table lives in the
 * same slot as every other profile-sync key. It holds ids only, never a secret.
 */
export interface LinkStore {
  get(sourceId: string): Promise<string | undefined>;
  /** One round trip for a batch (HMGET); absent ids are missing from the map. */
  getMany(sourceIds: readonly string[]): Promise<Map<string, string>>;
  /** Stores all rows atomically (MULTI): a failure leaves the table as it was. `replace` drops the old table first. */
  import(
    rows: readonly Pick<LinkRow, 'sourceId' | 'preludeUserId'>[],
    options?: { replace?: boolean },
  ): Promise<number>;
  /** Removes links; resolves to how many existed. */
  remove(sourceIds: readonly string[]): Promise<number>;
  count(): Promise<number>;
  /** Every link, in batches (HSCAN): memory stays flat however large the table. */
  entries(): AsyncIterable<[string, string]>;
}

export function linksKey(prefix: string): string {
  return new RedisLayout(prefix).links();
}

/** Fields per HSET/HMGET command: keeps each command well under Redis's argument limits. */
const BATCH = 1000;

export function createLinkStore(redis: Redis, prefix: string): LinkStore {
  const key = linksKey(prefix);
  return {
    async get(sourceId) {
      return (await redis.hget(key, sourceId)) ?? undefined;
    },
    async getMany(sourceIds) {
      const out = new Map<string, string>();
      for (let i = 0; i < sourceIds.length; i += BATCH) {
        const ids = sourceIds.slice(i, i + BATCH);
        const values = await redis.hmget(key, ...ids);
        ids.forEach((id, j) => {
          const v = values[j];
          if (v !== null && v !== undefined) out.set(id, v);
        });
      }
      return out;
    },
    async import(rows, options = {}) {
      const multi = redis.multi();
      if (options.replace) multi.del(key);
      for (let i = 0; i < rows.length; i += BATCH) {
        const args: string[] = [];
        for (const r of rows.slice(i, i + BATCH)) args.push(r.sourceId, r.preludeUserId);
        multi.hset(key, ...args);
      }
      const results = await multi.exec();
      const failed = results?.find(([err]) => err);
      if (!results || failed) throw failed?.[0] ?? new Error('links: import transaction aborted');
      return rows.length;
    },
    async remove(sourceIds) {
      if (sourceIds.length === 0) return 0;
      return redis.hdel(key, ...sourceIds);
    },
    count: () => redis.hlen(key),
    async *entries() {
      let cursor = '0';
      do {
        const [next, flat] = await redis.hscan(key, cursor, 'COUNT', BATCH);
        cursor = next;
        for (let i = 0; i < flat.length; i += 2) yield [flat[i]!, flat[i + 1]!] as [string, string];
      } while (cursor !== '0');
    },
  };
}

export interface LinkRow {
  sourceId: string;
  preludeUserId: string;
  /** 1-based line number where the row starts (the header is line 1). */
  line: number;
}
