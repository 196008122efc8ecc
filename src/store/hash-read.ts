import type { Redis } from 'ioredis';

/**
 * Issue 11.4: the values of a batch of fields in several hashes, in one Lua call that answers one
 * string per hash (the values joined by NUL, an absent one as ''), instead of one HMGET per hash whose
 * thousands of replies each cost a decode. NUL is in no stored value (JSON escapes it; ids and links
 * are validated), and no stored value is ''.
 */
export async function readHashes(
  redis: Redis,
  keys: readonly string[],
  fields: readonly string[],
): Promise<(string | null)[][]> {
  if (keys.length === 0) return [];
  if (fields.length === 0) return keys.map(() => []);
  const joined = await withScripts(redis).psStateMany(keys.length, ...keys, ...fields);
  return splitJoined(keys, fields, joined);
}

/**
 * `readHashes`, and in the same call which of `fields` are members of the set `setKey` (issue 11: the
 * scan's duplicate check rides on its chunk read, so a chunk's ids travel to Redis once less and the
 * chunk costs one round trip less). `members[i]` answers `fields[i]`.
 */
export async function readHashesAndMembers(
  redis: Redis,
  keys: readonly string[],
  fields: readonly string[],
  setKey: string,
): Promise<{ values: (string | null)[][]; members: boolean[] }> {
  if (fields.length === 0) return { values: keys.map(() => []), members: [] };
  const out = await withScripts(redis).psStateManyMembers(keys.length + 1, ...keys, setKey, ...fields);
  const flags = out[keys.length] ?? '';
  if (flags.length !== fields.length)
    throw new Error(`${setKey}: ${flags.length} memberships read for ${fields.length} fields`);
  const members = new Array<boolean>(fields.length);
  for (let i = 0; i < fields.length; i++) members[i] = flags.charCodeAt(i) === 49; // '1'
  return { values: splitJoined(keys, fields, out), members };
}

function splitJoined(
  keys: readonly string[],
  fields: readonly string[],
  joined: string[],
): (string | null)[][] {
  return keys.map((key, k) => {
    const parts = (joined[k] ?? '').split('\u0000');
    if (parts.length !== fields.length)
      throw new Error(`${key}: ${parts.length} values read for ${fields.length} fields`);
    return parts.map((v) => (v === '' ? null : v));
  });
}

/** Lua: `out[k]` = the values of ARGV's fields in hash KEYS[k] joined by NUL, for k = 1..`n`. */
const HMGET_JOINED = (n: string) => `
local out = {}
for k = 1, ${n} do
  local vals = {}
  for i = 1, #ARGV, 1000 do
    local part = redis.call('HMGET', KEYS[k], unpack(ARGV, i, math.min(i + 999, #ARGV)))
    for j = 1, #part do vals[#vals + 1] = part[j] or '' end
  end
  out[k] = table.concat(vals, '\\0')
end`;

/**
 * KEYS: hashes. ARGV: fields. Per key, one string: the values in ARGV order joined by NUL, an absent
 * one as ''. HMGET in slices (Lua's unpack has a stack limit of a few thousand values).
 */
const HASH_MANY_LUA = `${HMGET_JOINED('#KEYS')}
return out
`;

/**
 * HASH_MANY_LUA over all KEYS but the last, which is a set: one more string, a '1' or '0' per ARGV
 * field, whether it is a member (SMISMEMBER in slices, as HMGET).
 */
const HASH_MANY_MEMBERS_LUA = `
local n = #KEYS - 1${HMGET_JOINED('n')}
local flags = {}
for i = 1, #ARGV, 1000 do
  local part = redis.call('SMISMEMBER', KEYS[n + 1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  for j = 1, #part do flags[#flags + 1] = part[j] == 1 and '1' or '0' end
end
out[n + 1] = table.concat(flags)
return out
`;

interface Scripts {
  psStateMany(numKeys: number, ...args: string[]): Promise<string[]>;
  psStateManyMembers(numKeys: number, ...args: string[]): Promise<string[]>;
}

function withScripts(redis: Redis): Redis & Scripts {
  const r = redis as Redis & Partial<Scripts>;
  if (typeof r.psStateMany !== 'function') redis.defineCommand('psStateMany', { lua: HASH_MANY_LUA });
  if (typeof r.psStateManyMembers !== 'function')
    redis.defineCommand('psStateManyMembers', { lua: HASH_MANY_MEMBERS_LUA });
  return redis as Redis & Scripts;
}
