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

/** digest | epoch | sum | valid until | codes (jobs/scan-blocks.ts: 'a' + a base-3 number per user). */
const CONCLUSION = /^[A-Za-z0-9_-]{16}\|[0-9a-z]+\|[0-9a-z]+\|[0-9a-z]*\|[a-{]+$/;

/** A stored conclusion; undefined for a value this format does not explain (then it is not trusted). */
export function decodeConclusion(raw: string): BlockConclusion | undefined {
  if (!CONCLUSION.test(raw)) return undefined;
  const parts = raw.split('|');
  const [digest, epoch, sum, until, codes] = parts as [string, string, string, string, string];
  // CONCLUSION admits only base-36 digits in the numbers: each parses.
  return {
    digest,
    epoch: Number.parseInt(epoch, 36),
    sum: Number.parseInt(sum, 36),
    validUntil: until === '' ? undefined : Number.parseInt(until, 36),
    codes,
  };
}

/** What one chunk's first read answers (`readBlocks`). */
export interface BlocksRead {
  /** Per id asked, whether the run's seen set holds it (the scan's duplicate check). */
  seen: boolean[];
  /** The mutation counters' epoch (set by this call when it was 0). */
  epoch: number;
  /** Per block asked: its stored conclusion (raw), or null. */
  values: (string | null)[];
  /** Per block asked: the sum of its users' mutation counters (-1: read from another epoch). */
  sums: number[];
}

/** A block as `readBlocks` asks for it: its key and its users' mutation buckets (mutations.ts). */
export interface BlockAsk {
  key: string;
  buckets: readonly number[];
}

/**
 * What a chunk's blocks need, in two commands sent at once: first the whole counter string (128 KiB:
 * cheaper for both sides than a BITFIELD per user), from which each block's sum is added up here;
 * then one script call: which `ids` the run's seen set holds, the epoch (re-set, and every conclusion
 * dropped, when it is 0), and each block's stored conclusion. The counters go first and as a plain
 * command, written at once: a state read the caller sends right after this call (without awaiting it)
 * runs after them, whatever the script's load does (EVALSHA, NOSCRIPT, EVAL). A sum read from another
 * epoch than the script answered (the string deleted and re-created in between) is -1: that block is
 * neither trusted nor concluded. `newEpoch`: the epoch to set when it is 0 (non-zero, 32 bits).
 */
export function readBlocks(
  redis: Redis,
  layout: RedisLayout,
  seenKey: string,
  ids: readonly string[],
  blocks: readonly BlockAsk[],
  newEpoch: number,
): Promise<BlocksRead> {
  const counted = redis.getrangeBuffer(layout.mutations(), 0, -1);
  const keys = [seenKey, layout.scanBlocks(), layout.mutations()];
  // The ids as one argument, one a line (no id holds a control character: the source connector
  // refuses them, record.ts): one string for ioredis to send, not thousands.
  const scripted = withScript(redis).psScanBlocks(
    3,
    ...keys,
    newEpoch,
    ids.join('\n'),
    ...blocks.map((b) => b.key),
  );
  return Promise.all([counted, scripted]).then(([counters, [flags, epochText, values]]) => {
    if (flags.length !== ids.length)
      throw new Error(`${seenKey}: ${flags.length} memberships for ${ids.length} ids`);
    const seen = new Array<boolean>(ids.length);
    for (let i = 0; i < ids.length; i++) seen[i] = flags.charCodeAt(i) === 49; // '1'
    const vals = blocks.length ? values.split('\u0000').map((v) => (v === '' ? null : v)) : [];
    if (vals.length !== blocks.length)
      throw new Error(`${layout.scanBlocks()}: ${vals.length} values for ${blocks.length} blocks`);
    const epoch = Number(epochText);
    // No string at all reads as every counter 0, the least a sum can be: safe in the epoch the script
    // then set (counters only grow within an epoch). A string of another epoch is not.
    const sameEpoch = counters.length === 0 || (counters.length >= 4 && counters.readUInt32BE(0) === epoch);
    // Counter i is the 16-bit big-endian number at byte 2 * i (BITFIELD's `#i`); past the end: 0.
    const sums = blocks.map((b) => {
      if (!sameEpoch) return -1;
      let sum = 0;
      for (const bucket of b.buckets) {
        const at = 2 * (bucket + EPOCH_SLOTS);
        if (at + 1 < counters.length) sum += counters.readUInt16BE(at);
      }
      return sum;
    });
    return { seen, epoch, values: vals, sums };
  });
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
 * KEYS: seen set, blocks hash, mutation counters. ARGV: new epoch, the ids one a line, then the block
 * keys. Returns {seen flags ('1'/'0' per id), epoch, the blocks' values joined by NUL (absent: '')}.
 * Slices of 1,000 (Lua's unpack limit).
 */
const SCAN_BLOCKS_LUA = `
local epoch = redis.call('BITFIELD', KEYS[3], 'GET', 'u32', 0)[1]
if epoch == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('BITFIELD', KEYS[3], 'SET', 'u32', 0, ARGV[1])
  epoch = tonumber(ARGV[1])
end
local ids = {}
for id in string.gmatch(ARGV[2], '[^\\n]+') do ids[#ids + 1] = id end
local flags = {}
for i = 1, #ids, 1000 do
  local part = redis.call('SMISMEMBER', KEYS[1], unpack(ids, i, math.min(i + 999, #ids)))
  for j = 1, #part do flags[#flags + 1] = part[j] == 1 and '1' or '0' end
end
local values = {}
for i = 3, #ARGV, 1000 do
  local part = redis.call('HMGET', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  for j = 1, #part do values[#values + 1] = part[j] or '' end
end
return {table.concat(flags), tostring(epoch), table.concat(values, '\\0')}
`;

interface Script {
  psScanBlocks(numKeys: number, ...args: (string | number)[]): Promise<[string, string, string]>;
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
