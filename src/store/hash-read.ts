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
  return keys.map((key, k) => {
    const parts = (joined[k] ?? '').split('\u0000');
    if (parts.length !== fields.length)
      throw new Error(`${key}: ${parts.length} values read for ${fields.length} fields`);
    return parts.map((v) => (v === '' ? null : v));
  });
}

/**
 * KEYS: hashes. ARGV: fields. Per key, one string: the values in ARGV order joined by NUL, an absent
 * one as ''. HMGET in slices (Lua's unpack has a stack limit of a few thousand values).
 */
const HASH_MANY_LUA = `
local out = {}
for k = 1, #KEYS do
  local vals = {}
  for i = 1, #ARGV, 1000 do
    local part = redis.call('HMGET', KEYS[k], unpack(ARGV, i, math.min(i + 999, #ARGV)))
    for j = 1, #part do vals[#vals + 1] = part[j] or '' end
  end
  out[k] = table.concat(vals, '\\0')
end
return out
`;

interface Scripts {
  psStateMany(numKeys: number, ...args: string[]): Promise<string[]>;
}

function withScripts(redis: Redis): Redis & Scripts {
  const r = redis as Redis & Partial<Scripts>;
  if (typeof r.psStateMany !== 'function') redis.defineCommand('psStateMany', { lua: HASH_MANY_LUA });
  return redis as Redis & Scripts;
}
