import type { Redis } from 'ioredis';
import { EPOCH_SLOTS } from './mutations.js';
import type { RedisLayout } from './redis-layout.js';

/**
 * Issue 11 (unchanged re-run): the Redis half of the scan's block conclusions (jobs/scan-blocks.ts).
 *
 * `{p}:blocks` maps a block key (a hash of the block's first user id: no id is stored) to what a scan
 * concluded when it found every user of the block unchanged in every target:
 *
 *     <digest>|<epoch>|<counter sum>|<valid until>|<codes>
 *
 * - digest: 16 base64url characters of sha256 over the run's config and the block's users as the
 *   source returned them (jobs/scan-blocks.ts);
 * - epoch and counter sum (base 36): the mutation counters' epoch and the sum of the users' counters
 *   (src/store/mutations.ts), read before their states were;
 * - valid until (base 36 ms, or empty): the earliest time an unlinked marker of the block stops being
 *   fresh (`UNLINKED_RECHECK`);
 * - codes: one character per user, its outcome in each target (unchanged, or unlinked with or
 *   without a state), what the scan counts for it.
 *
 * A later scan that computes the same digest, reads the same epoch and sum, and is before `valid
 * until` counts the block's users from the codes without reading a state.
 */
export interface BlockConclusion {
  digest: string;
  epoch: number;
  sum: number;
  /** Epoch ms; undefined: no unlinked marker in the block. */
  validUntil: number | undefined;
  codes: string;
}

export function encodeConclusion(c: BlockConclusion): string {
  const until = c.validUntil === undefined ? '' : c.validUntil.toString(36);
  return `${c.digest}|${c.epoch.toString(36)}|${c.sum.toString(36)}|${until}|${c.codes}`;
}

/** A stored conclusion; undefined for a value this format does not explain (then it is not trusted). */
export function decodeConclusion(raw: string): BlockConclusion | undefined {
  const parts = raw.split('|');
  if (parts.length !== 5) return undefined;
  const [digest, epoch, sum, until, codes] = parts as [string, string, string, string, string];
  const c: BlockConclusion = {
    digest,
    epoch: Number.parseInt(epoch, 36),
    sum: Number.parseInt(sum, 36),
    validUntil: until === '' ? undefined : Number.parseInt(until, 36),
    codes,
  };
  if (!Number.isFinite(c.epoch) || !Number.isFinite(c.sum)) return undefined;
  if (c.validUntil !== undefined && !Number.isFinite(c.validUntil)) return undefined;
  return c;
}

/** What one chunk's first read answers (`readBlocks`). */
export interface BlocksRead {
  /** Per id asked, whether the run's seen set holds it (the scan's duplicate check). */
  seen: boolean[];
  /** The mutation counters' epoch (set by this call when it was 0). */
  epoch: number;
  /** Per block asked: its stored conclusion (raw), or null. */
  values: (string | null)[];
  /** Per block asked: the sum of its users' mutation counters. */
  sums: number[];
}

/** A block as `readBlocks` asks for it: its key and its users' mutation buckets (mutations.ts). */
export interface BlockAsk {
  key: string;
  buckets: readonly number[];
}

/**
 * One call: which `ids` the run's seen set holds, the mutation epoch (re-set, and every conclusion
 * dropped, when it is 0), and per block its stored conclusion and its users' counter sum.
 * `newEpoch`: the epoch to set when it is 0 (non-zero, 32 bits).
 */
export async function readBlocks(
  redis: Redis,
  layout: RedisLayout,
  seenKey: string,
  ids: readonly string[],
  blocks: readonly BlockAsk[],
  newEpoch: number,
): Promise<BlocksRead> {
  const args: (string | number | Buffer)[] = [newEpoch, ids.length, ...ids, blocks.length];
  // A block's buckets as one argument of 16-bit big-endian numbers (not one argument each).
  for (const b of blocks) {
    const packed = Buffer.allocUnsafe(b.buckets.length * 2);
    for (let i = 0; i < b.buckets.length; i++) packed.writeUInt16BE(b.buckets[i]!, i * 2);
    args.push(b.key, packed);
  }
  const [flags, epoch, values, sums] = await withScript(redis).psScanBlocks(
    3,
    seenKey,
    layout.scanBlocks(),
    layout.mutations(),
    ...args,
  );
  if (flags.length !== ids.length)
    throw new Error(`${seenKey}: ${flags.length} memberships for ${ids.length} ids`);
  const seen = new Array<boolean>(ids.length);
  for (let i = 0; i < ids.length; i++) seen[i] = flags.charCodeAt(i) === 49; // '1'
  const vals = blocks.length ? values.split('\u0000').map((v) => (v === '' ? null : v)) : [];
  const sumList = blocks.length ? sums.split(',').map(Number) : [];
  if (vals.length !== blocks.length || sumList.length !== blocks.length)
    throw new Error(
      `${layout.scanBlocks()}: ${vals.length} values, ${sumList.length} sums for ${blocks.length} blocks`,
    );
  return { seen, epoch: Number(epoch), values: vals, sums: sumList };
}

/** Stores conclusions (one HSET). */
export async function writeBlocks(
  redis: Redis,
  layout: RedisLayout,
  entries: readonly (readonly [string, BlockConclusion])[],
): Promise<void> {
  if (entries.length === 0) return;
  await redis.hset(layout.scanBlocks(), ...entries.flatMap(([k, c]) => [k, encodeConclusion(c)]));
}

/**
 * KEYS: seen set, blocks hash, mutation counters. ARGV: new epoch, n, n ids, m, then per block: key,
 * its users' mutation buckets (16-bit big-endian, packed; a bucket's counter is at u16 index bucket +
 * EPOCH_SLOTS). Returns {seen flags ('1'/'0' per id), epoch, values joined by NUL (absent:
 * ''), sums joined by ','}. Slices of 1,000 (Lua's unpack limit).
 */
const SCAN_BLOCKS_LUA = `
local KM = KEYS[3]
local epoch = redis.call('BITFIELD', KM, 'GET', 'u32', 0)[1]
if epoch == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('BITFIELD', KM, 'SET', 'u32', 0, ARGV[1])
  epoch = tonumber(ARGV[1])
end
local n = tonumber(ARGV[2])
local flags = {}
for i = 3, n + 2, 1000 do
  local part = redis.call('SMISMEMBER', KEYS[1], unpack(ARGV, i, math.min(i + 999, n + 2)))
  for j = 1, #part do flags[#flags + 1] = part[j] == 1 and '1' or '0' end
end
local p = n + 3
local m = tonumber(ARGV[p])
p = p + 1
local keys, sums = {}, {}
for b = 1, m do
  keys[b] = ARGV[p]
  local packed = ARGV[p + 1]
  p = p + 2
  local s = 0
  for i = 1, #packed, 600 do
    local ops = {}
    for j = i, math.min(i + 599, #packed), 2 do
      local hi, lo = string.byte(packed, j, j + 1)
      ops[#ops + 1] = 'GET'
      ops[#ops + 1] = 'u16'
      ops[#ops + 1] = '#' .. (hi * 256 + lo + ${EPOCH_SLOTS})
    end
    local got = redis.call('BITFIELD', KM, unpack(ops))
    for j = 1, #got do s = s + got[j] end
  end
  sums[b] = s
end
local values = {}
if m > 0 then
  for i = 1, m, 1000 do
    local part = redis.call('HMGET', KEYS[2], unpack(keys, i, math.min(i + 999, m)))
    for j = 1, #part do values[#values + 1] = part[j] or '' end
  end
end
return {table.concat(flags), tostring(epoch), table.concat(values, '\\0'), table.concat(sums, ',')}
`;

interface Script {
  psScanBlocks(
    numKeys: number,
    ...args: (string | number | Buffer)[]
  ): Promise<[string, string, string, string]>;
}

function withScript(redis: Redis): Redis & Script {
  const r = redis as Redis & Partial<Script>;
  if (typeof r.psScanBlocks !== 'function') redis.defineCommand('psScanBlocks', { lua: SCAN_BLOCKS_LUA });
  return redis as Redis & Script;
}

/**
 * Drops the conclusions whose key is not in `keep` (the blocks a complete scan cut): blocks that no
 * longer start where they did (users added or removed at their edges) would otherwise stay forever.
 * HSCAN in batches: memory flat. Returns how many were dropped.
 */
export async function dropBlocksExcept(
  redis: Redis,
  layout: RedisLayout,
  keep: ReadonlySet<string>,
): Promise<number> {
  const key = layout.scanBlocks();
  let dropped = 0;
  let cursor = '0';
  do {
    const [next, flat] = await redis.hscan(key, cursor, 'COUNT', 1000);
    cursor = next;
    const stale = flat.filter((f, i) => i % 2 === 0 && !keep.has(f));
    if (stale.length) dropped += await redis.hdel(key, ...stale);
  } while (cursor !== '0');
  return dropped;
}
