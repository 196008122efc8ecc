import type { Redis } from 'ioredis';
import { compactTail, decodeLink, encodeLink, isOldLink, LUA_LINKS_TO, linkIdOf } from './link-codec.js';
import { bumpIn, bumpLua, counterIndex } from './mutations.js';
import { RedisLayout } from './redis-layout.js';

export { decodeLink, encodeLink, linkIdOf } from './link-codec.js';

/**
 * The Prelude link table: source user id -> Prelude user id, for apps whose users are not known under
 * their source ids (seed 004's `UserID` is "prefixed with 'usr_'"). One Redis hash,
 * `{prefix}:links:prelude`: the `{prefix}` braces are a Redis Cluster hash tag, so the table lives in the
 * same slot as every other profile-sync key. It holds ids only, never a secret.
 */
/** How a link was found (issue 10): imported by the operator, looked up by Prelude, or created by us. */
export type LinkHow = 'import' | 'external_id' | 'email' | 'create';
const HOWS: readonly LinkHow[] = ['import', 'external_id', 'email', 'create'];

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

/**
 * KEYS[1] links, KEYS[2] mutation counters; ARGV: (source id, value, mutation bucket) triples. A link
 * added bumps its user's counter (mutations.ts).
 */
const ADD_FOUND = `
local n = 0
for i = 1, #ARGV, 3 do
  local added = redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
  if added == 1 then ${bumpLua('KEYS[2]', 'ARGV[i + 2]')} end
  n = n + added
end
return n`;

/**
 * KEYS[1] links, KEYS[2] the old how/when hash, KEYS[3] mutation counters. ARGV: source id, Prelude id,
 * its compact tail, the user's mutation bucket.
 */
const DROP = `${LUA_LINKS_TO}
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and linksTo(v, ARGV[2], ARGV[3]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  ${bumpLua('KEYS[3]', 'ARGV[4]')}
  return 1
end
return 0`;

/** KEYS[1] links, KEYS[2] the old how hash. ARGV: (source id, value read, new value) triples: compare-and-set. */
const UPGRADE = `
local n = 0
for i = 1, #ARGV, 3 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    redis.call('HDEL', KEYS[2], ARGV[i])
    n = n + 1
  end
end
return n`;

/**
 * Rewrites old-format links (the bare id, how/when in `{p}:links:prelude:how`) in the new format, each
 * only if it still holds what was read; `raw` is what the caller read for `sourceIds` (readChunk).
 * Links from before issue 10 (no how/when anywhere) are left as they are: they cost no second entry.
 */
export async function upgradeLinks(
  redis: Redis,
  layout: RedisLayout,
  sourceIds: readonly string[],
  raw: readonly (string | null)[],
): Promise<number> {
  const ids: string[] = [];
  const olds: string[] = [];
  raw.forEach((v, i) => {
    if (v !== null && isOldLink(v)) {
      ids.push(sourceIds[i]!);
      olds.push(v);
    }
  });
  if (ids.length === 0) return 0;
  const infos = await redis.hmget(layout.linksHow(), ...ids);
  const args: string[] = [];
  infos.forEach((json, i) => {
    const info = parseInfo(json);
    // An id with a control character (imported before encodeLink refused one) stays as it is.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: what is skipped
    if (info && !/[\u0000-\u001f]/.test(olds[i]!))
      args.push(ids[i]!, olds[i]!, encodeLink(olds[i]!, info.how, info.at));
  });
  if (args.length === 0) return 0;
  return Number(await redis.eval(UPGRADE, 2, layout.links(), layout.linksHow(), ...args));
}

function parseInfo(json: string | null): LinkInfo | undefined {
  if (!json) return undefined;
  try {
    const v = JSON.parse(json) as Partial<LinkInfo>;
    return typeof v.how === 'string' && HOWS.includes(v.how as LinkHow) && typeof v.at === 'number'
      ? { how: v.how, at: v.at }
      : undefined;
  } catch {
    return undefined;
  }
}

export function createLinkStore(redis: Redis, prefix: string): LinkStore {
  const key = linksKey(prefix);
  const howKey = new RedisLayout(prefix).linksHow();
  const mutations = new RedisLayout(prefix).mutations();
  const blocks = new RedisLayout(prefix).scanBlocks();
  return {
    async get(sourceId) {
      return linkIdOf(await redis.hget(key, sourceId));
    },
    async getMany(sourceIds) {
      const out = new Map<string, string>();
      for (let i = 0; i < sourceIds.length; i += BATCH) {
        const ids = sourceIds.slice(i, i + BATCH);
        const values = await redis.hmget(key, ...ids);
        ids.forEach((id, j) => {
          const v = linkIdOf(values[j]);
          if (v !== undefined) out.set(id, v);
        });
      }
      return out;
    },
    async addFound(links, at = Date.now()) {
      let n = 0;
      for (let i = 0; i < links.length; i += BATCH) {
        const args: string[] = [];
        for (const l of links.slice(i, i + BATCH))
          args.push(l.sourceId, encodeLink(l.preludeUserId, l.how, at), String(counterIndex(l.sourceId)));
        n += Number(await redis.eval(ADD_FOUND, 2, key, mutations, ...args));
      }
      return n;
    },
    async drop(sourceId, preludeUserId) {
      const tail = compactTail(preludeUserId);
      const bucket = String(counterIndex(sourceId));
      return (
        Number(await redis.eval(DROP, 3, key, howKey, mutations, sourceId, preludeUserId, tail, bucket)) === 1
      );
    },
    async info(sourceIds) {
      const out = new Map<string, LinkInfo>();
      for (let i = 0; i < sourceIds.length; i += BATCH) {
        const ids = sourceIds.slice(i, i + BATCH);
        const values = await redis.hmget(key, ...ids);
        const old: string[] = [];
        ids.forEach((id, j) => {
          const v = values[j];
          if (v === null || v === undefined) return;
          const info = decodeLink(v).info;
          if (info) out.set(id, info);
          else old.push(id);
        });
        // Old-format links: how and when in the old hash (links from before issue 10 have none).
        if (old.length === 0) continue;
        const infos = await redis.hmget(howKey, ...old);
        old.forEach((id, j) => {
          const info = parseInfo(infos[j] ?? null);
          if (info) out.set(id, info);
        });
      }
      return out;
    },
    async import(rows, options = {}) {
      const at = Date.now();
      const multi = redis.multi();
      if (options.replace) {
        multi.del(key, howKey);
        // Any link may be gone: every conclusion of the scan goes (scan-blocks.ts).
        multi.del(blocks);
      }
      for (let i = 0; i < rows.length; i += BATCH) {
        const args: string[] = [];
        const ids: string[] = [];
        for (const r of rows.slice(i, i + BATCH)) {
          args.push(r.sourceId, encodeLink(r.preludeUserId, 'import', at));
          ids.push(r.sourceId);
        }
        multi.hset(key, ...args);
        bumpIn(multi, mutations, ids);
        if (!options.replace) multi.hdel(howKey, ...ids); // an old-format how/when of a replaced link
      }
      const results = await multi.exec();
      const failed = results?.find(([err]) => err);
      if (!results || failed) throw failed?.[0] ?? new Error('links: import transaction aborted');
      return rows.length;
    },
    async remove(sourceIds) {
      if (sourceIds.length === 0) return 0;
      const m = redis
        .multi()
        .hdel(key, ...sourceIds)
        .hdel(howKey, ...sourceIds);
      const [[, n]] = (await bumpIn(m, mutations, sourceIds).exec()) as [[Error | null, number]];
      return n;
    },
    count: () => redis.hlen(key),
    async *entries() {
      let cursor = '0';
      do {
        const [next, flat] = await redis.hscan(key, cursor, 'COUNT', BATCH);
        cursor = next;
        for (let i = 0; i < flat.length; i += 2)
          yield [flat[i]!, linkIdOf(flat[i + 1]!)!] as [string, string];
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
