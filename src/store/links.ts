import type { Redis } from 'ioredis';
import { RedisLayout } from './redis-layout.js';

/**
 * The Prelude link table: source user id -> Prelude user id, for apps whose users are not known under
 * their source ids (seed 004's `UserID` is "prefixed with 'usr_'"). One Redis hash,
 * `{prefix}:links:prelude`: the `{prefix}` braces are a Redis Cluster hash tag, so the table lives in the
 * same slot as every other profile-sync key. It holds ids only, never a secret.
 */
/** How a link was found (issue 10): imported by the operator, looked up by Prelude, or created by us. */
export type LinkHow = 'import' | 'external_id' | 'email' | 'create';

export interface LinkInfo {
  how: LinkHow;
  /** ms since epoch. */
  at: number;
}

export interface FoundLink {
  sourceId: string;
  preludeUserId: string;
  how: Exclude<LinkHow, 'import'>;
}

export interface LinkStore {
  get(sourceId: string): Promise<string | undefined>;
  /** One round trip for a batch (HMGET); absent ids are missing from the map. */
  getMany(sourceIds: readonly string[]): Promise<Map<string, string>>;
  /** Stores all rows atomically (MULTI): a failure leaves the table as it was. `replace` drops the old table first. */
  import(
    rows: readonly Pick<LinkRow, 'sourceId' | 'preludeUserId'>[],
    options?: { replace?: boolean },
  ): Promise<number>;
  /**
   * Stores links found by a lookup or a create, each only where the source id has no link yet (HSETNX,
   * one Lua script per batch): an imported link always wins, and a lookup repeated after a crash
   * changes nothing. Resolves to how many were new.
   */
  addFound(links: readonly FoundLink[], at?: number): Promise<number>;
  /** Drops the link only while it still points at `preludeUserId` (Prelude answered user_not_found for it). */
  drop(sourceId: string, preludeUserId: string): Promise<boolean>;
  /** How and when each link was found; links imported before issue 10 have none. */
  info(sourceIds: readonly string[]): Promise<Map<string, LinkInfo>>;
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

/** KEYS[1] links, KEYS[2] how; ARGV: info, then (source id, Prelude id) pairs. */
const ADD_FOUND = `
local n = 0
for i = 2, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
    n = n + 1
  end
end
return n`;

const DROP = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0`;

export function createLinkStore(redis: Redis, prefix: string): LinkStore {
  const key = linksKey(prefix);
  const howKey = new RedisLayout(prefix).linksHow();
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
    async addFound(links, at = Date.now()) {
      let n = 0;
      for (let i = 0; i < links.length; i += BATCH) {
        const args: string[] = [];
        for (const l of links.slice(i, i + BATCH))
          args.push(l.sourceId, l.preludeUserId, JSON.stringify({ how: l.how, at }));
        n += Number(await redis.eval(ADD_FOUND, 2, key, howKey, '', ...args));
      }
      return n;
    },
    async drop(sourceId, preludeUserId) {
      return Number(await redis.eval(DROP, 2, key, howKey, sourceId, preludeUserId)) === 1;
    },
    async info(sourceIds) {
      const out = new Map<string, LinkInfo>();
      for (let i = 0; i < sourceIds.length; i += BATCH) {
        const ids = sourceIds.slice(i, i + BATCH);
        const values = await redis.hmget(howKey, ...ids);
        ids.forEach((id, j) => {
          const v = values[j];
          if (v) out.set(id, JSON.parse(v) as LinkInfo);
        });
      }
      return out;
    },
    async import(rows, options = {}) {
      const multi = redis.multi();
      if (options.replace) multi.del(key, howKey);
      const info = JSON.stringify({ how: 'import', at: Date.now() } satisfies LinkInfo);
      for (let i = 0; i < rows.length; i += BATCH) {
        const args: string[] = [];
        const how: string[] = [];
        for (const r of rows.slice(i, i + BATCH)) {
          args.push(r.sourceId, r.preludeUserId);
          how.push(r.sourceId, info);
        }
        multi.hset(key, ...args);
        multi.hset(howKey, ...how);
      }
      const results = await multi.exec();
      const failed = results?.find(([err]) => err);
      if (!results || failed) throw failed?.[0] ?? new Error('links: import transaction aborted');
      return rows.length;
    },
    async remove(sourceIds) {
      if (sourceIds.length === 0) return 0;
      const [[, n]] = (await redis
        .multi()
        .hdel(key, ...sourceIds)
        .hdel(howKey, ...sourceIds)
        .exec()) as [[Error | null, number]];
      return n;
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
