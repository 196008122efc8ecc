import type { Redis } from 'ioredis';
import { bumpLua } from './mutations.js';

/**
 * The run store's Lua scripts (record-and-settle exactly once, pending, finish, scan compare-and-set,
 * finish-if-done), defined once per connection by `withScripts`. Used by src/store/run-store.ts.
 */

/**
 * Records outcome counters and items atomically, once per settle member.
 * KEYS: run hash, items list, settled set, then per item its user's bucket of the run's history index
 *       (`run:<id>:users:<b>`) and its target's displaceable-items list (`run:<id>:changeidx:<target>`).
 * ARGV: now, history max age ms, history max length (both unused since issue 11.4: the index goes with
 *       its run), runId, settle member ('' = none), counter count, (field, by) pairs, then per item
 *       (target, outcome, item JSON, user key).
 * Items are bounded per target (issue 11.3): the run hash's `itemsMax` (set when the run is created;
 * absent = no bound) caps the items kept per target in `itemsKept:<t>`. Below the cap an item is
 * appended; a change item (not `failed`/`rejected`) also leaves `<index>/<outcome>` in the target's
 * displaceable list. At the cap, a failure or rejection takes the slot of the oldest kept change
 * (LSET at its index; the change is counted as left out), else it is itself left out. Left-out
 * items are counted in `itemsLeft:<outcome>:<t>`; counters stay exact. A user gets a history entry
 * only for a kept item (a displaced change's entry then names another user: dropped on read); issue
 * 11.4: the entry is the item's index appended to the user's field in the run's history index.
 * Returns the number of items kept, -1 when the member had already settled (nothing recorded).
 */
const RECORD_BODY = `
local now = tonumber(ARGV[1])
local maxAge = tonumber(ARGV[2])
local maxLen = tonumber(ARGV[3])
local runId = ARGV[4]
local member = ARGV[5]
local nCounters = tonumber(ARGV[6])
if member ~= '' then
  if redis.call('SADD', KEYS[3], member) == 0 then return -1 end
  redis.call('HINCRBY', KEYS[1], 'settled', 1)
end
for i = 0, nCounters - 1 do
  redis.call('HINCRBY', KEYS[1], ARGV[7 + 2 * i], tonumber(ARGV[8 + 2 * i]))
end
local nItems = (#KEYS - FIXED) / 2
if nItems == 0 then return 0 end
local maxItems = tonumber(redis.call('HGET', KEYS[1], 'itemsMax') or '-1')
local base = 7 + 2 * nCounters
local keptNow = 0
for k = 0, nItems - 1 do
  local t = ARGV[base + 4 * k]
  local o = ARGV[base + 4 * k + 1]
  local json = ARGV[base + 4 * k + 2]
  local uk = ARGV[base + 4 * k + 3]
  local h = KEYS[FIXED + 1 + 2 * k]
  local spare = KEYS[FIXED + 2 + 2 * k]
  local priority = (o == 'failed' or o == 'rejected')
  local idx = nil
  if maxItems < 0 then
    idx = redis.call('RPUSH', KEYS[2], json) - 1
  elseif tonumber(redis.call('HGET', KEYS[1], 'itemsKept:' .. t) or '0') < maxItems then
    idx = redis.call('RPUSH', KEYS[2], json) - 1
    redis.call('HINCRBY', KEYS[1], 'itemsKept:' .. t, 1)
    if not priority then redis.call('RPUSH', spare, idx .. '/' .. o) end
  else
    local victim = false
    if priority then victim = redis.call('LPOP', spare) end
    if victim then
      local slash = string.find(victim, '/', 1, true)
      idx = tonumber(string.sub(victim, 1, slash - 1))
      redis.call('LSET', KEYS[2], idx, json)
      redis.call('HINCRBY', KEYS[1], 'itemsLeft:' .. string.sub(victim, slash + 1) .. ':' .. t, 1)
    else
      redis.call('HINCRBY', KEYS[1], 'itemsLeft:' .. o .. ':' .. t, 1)
    end
  end
  if idx then
    keptNow = keptNow + 1
    local prev = redis.call('HGET', h, uk)
    if prev then redis.call('HSET', h, uk, prev .. ',' .. idx) else redis.call('HSET', h, uk, idx) end
  end
end
return keptNow
`;
const RECORD_LUA = `local FIXED = 3\n${RECORD_BODY}`;

/** Marks jobs as pending (enqueued) once each; returns how many were new. KEYS: run hash, pending set. */
const PENDING_LUA = `
local added = 0
for i = 1, #ARGV do added = added + redis.call('SADD', KEYS[2], ARGV[i]) end
if added > 0 then redis.call('HINCRBY', KEYS[1], 'enqueued', added) end
return added
`;

/**
 * Ends a run once (issue 8.8: atomic, whichever process calls it): only a run still `running` changes.
 * KEYS: run hash, pending set, settled set. ARGV: status, endedAt, error ('' = none), bookkeeping TTL ms.
 * Returns 1 when this call ended the run, 0 when it was already over (or gone).
 */
const FINISH_LUA = `
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'endedAt', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[3]) end
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[4]))
return 1
`;

/**
 * Compare-and-set of the run's scan JSON (issue 8.8): writes ARGV[2] only if the field still holds
 * ARGV[1] (what the caller read and merged its patch into), so two processes' patches never overwrite
 * each other (the loser reads again and re-applies). KEYS: run hash.
 * Returns 1 written, 0 changed meanwhile (retry), -1 the run does not exist (nothing written: no debris).
 */
const SCAN_CAS_LUA = `
if redis.call('HEXISTS', KEYS[1], 'id') == 0 then return -1 end
local cur = redis.call('HGET', KEYS[1], 'scan')
if cur == false then cur = '' end
if cur ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'scan', ARGV[2])
return 1
`;

/**
 * Ends a run when it is over, deciding and writing in one atomic step (issue 8.8; the rules of
 * src/queue/run-lifecycle.ts `maybeFinishRun`): still `running`, its scan ended (`done`, `failed`,
 * `aborted`) and every enqueued job settled. Status: `failed` when the scan failed, else `aborted`
 * when an abort was asked (the scan then never counts as complete), else `held` when the safety brake
 * held removals, else `completed`.
 * KEYS: run hash, pending set, settled set. ARGV: endedAt, bookkeeping TTL ms.
 * Returns the status set, or false when the run is not over (or already ended, or gone).
 */
const FINISH_IF_DONE_BODY = `
local h = redis.call('HMGET', KEYS[1], 'status', 'enqueued', 'settled')
if h[1] ~= 'running' then return false end
-- Issue 11.2: the cheap test first (every job but the last stops here), the scan JSON only then.
if tonumber(h[3] or '0') < tonumber(h[2] or '0') then return false end
h = redis.call('HMGET', KEYS[1], 'status', 'scan', 'enqueued', 'settled', 'abortReason', 'deletionsHeld')
local scan = nil
if h[2] then scan = cjson.decode(h[2]) end
local scanStatus = 'pending'
if scan and type(scan.status) == 'string' then scanStatus = scan.status end
if scanStatus ~= 'done' and scanStatus ~= 'failed' and scanStatus ~= 'aborted' then return false end
if tonumber(h[4] or '0') < tonumber(h[3] or '0') then return false end
local status = 'completed'
if scanStatus == 'failed' then status = 'failed'
elseif h[5] and h[5] ~= '' then status = 'aborted'
elseif h[6] and h[6] ~= '' then status = 'held' end
if status == 'aborted' and scan.complete ~= false then
  scan.complete = false
  redis.call('HSET', KEYS[1], 'scan', cjson.encode(scan))
end
redis.call('HSET', KEYS[1], 'status', status, 'endedAt', ARGV[1])
redis.call('PEXPIRE', KEYS[PENDING], tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[2]))
return status
`;
const FINISH_IF_DONE_LUA = `local PENDING = 2\n${FINISH_IF_DONE_BODY}`;

/**
 * Issue 11.2: a job's settle and the finish check in one call (one round trip instead of two): first
 * the job's target state when given (StateStore.saveWritten's HSETNX of the key list, HSET + HDEL and
 * the user's mutation counter, mutations.ts), then RECORD as above, then FINISH_IF_DONE (whatever
 * RECORD returned: a replay may be the last to look).
 * KEYS: run hash, items list, settled set, pending set, [state hash, unlinked hash, key-list hash,
 * mutation counters when a state is written], then RECORD's per-item pairs.
 * ARGV: RECORD's, then endedAt, bookkeeping TTL ms, state field and value ('' '' = none), key-list id
 * and JSON ('' '' = none: an inline payload), the user's mutation bucket: the last seven.
 * Returns {RECORD's result, the status set or ''}.
 */
const RECORD_FINISH_LUA = `
local FIXED = 4
local PENDING = 4
local n = #ARGV
if ARGV[n - 4] ~= '' then
  FIXED = 8
  if ARGV[n - 2] ~= '' then redis.call('HSETNX', KEYS[7], ARGV[n - 2], ARGV[n - 1]) end
  redis.call('HSET', KEYS[5], ARGV[n - 4], ARGV[n - 3])
  redis.call('HDEL', KEYS[6], ARGV[n - 4])
  ${bumpLua('KEYS[8]', 'ARGV[n]')}
end
local recordArgv = {}
for i = 1, n - 7 do recordArgv[i] = ARGV[i] end
local finishArgv = {ARGV[n - 6], ARGV[n - 5]}
local function record(ARGV)
${RECORD_BODY}
end
local function finish(ARGV)
${FINISH_IF_DONE_BODY}
end
local kept = record(recordArgv)
return {kept, finish(finishArgv) or ''}
`;

/**
 * Issue 11: several settles of one run in one call, each exactly RECORD_FINISH_LUA's without its
 * finish check, then one finish check (jobs/sync-batch.ts settles a few users of a batch together).
 * KEYS: run hash, items list, settled set, pending set, then per settle its state's three hashes (state,
 * unlinked, key list) and the mutation counters (only when it writes a state), and RECORD's per-item
 * pairs.
 * ARGV: now, history max age ms, history max length, runId, endedAt, bookkeeping TTL ms, then per
 * settle: member, counter count, (field, by) pairs, item count, (target, outcome, JSON, user key) per
 * item, state field ('' = none), state value, key-list id and JSON ('' '' = none), the user's
 * mutation counter index (mutations.ts).
 * Returns {RECORD's result per settle (-1: already settled, nothing recorded), the status set or ''}.
 */
const RECORD_MANY_LUA = `
local FIXED = 3
local PENDING = 4
local function record(KEYS, ARGV)
${RECORD_BODY}
end
local function finish(ARGV)
${FINISH_IF_DONE_BODY}
end
local out = {}
local a, k = 7, 5
while a <= #ARGV do
  local nc = tonumber(ARGV[a + 1])
  local rargv = {ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[a], nc}
  for i = 0, 2 * nc - 1 do rargv[7 + i] = ARGV[a + 2 + i] end
  a = a + 2 + 2 * nc
  local ni = tonumber(ARGV[a])
  for i = 0, 4 * ni - 1 do rargv[7 + 2 * nc + i] = ARGV[a + 1 + i] end
  a = a + 1 + 4 * ni
  if ARGV[a] ~= '' then
    if ARGV[a + 2] ~= '' then redis.call('HSETNX', KEYS[k + 2], ARGV[a + 2], ARGV[a + 3]) end
    redis.call('HSET', KEYS[k], ARGV[a], ARGV[a + 1])
    redis.call('HDEL', KEYS[k + 1], ARGV[a])
    ${bumpLua('KEYS[k + 3]', 'ARGV[a + 4]')}
    k = k + 4
  end
  a = a + 5
  local rkeys = {KEYS[1], KEYS[2], KEYS[3]}
  for i = 0, 2 * ni - 1 do rkeys[4 + i] = KEYS[k + i] end
  k = k + 2 * ni
  out[#out + 1] = record(rkeys, rargv)
end
out[#out + 1] = finish({ARGV[5], ARGV[6]}) or ''
return out
`;

/**
 * Issue 11.2: what a job reads before it sends anything, in one call: the gate fields of the run hash,
 * whether the job's member already settled (a replay), and any hash fields the job needs next (its
 * target state, its Prelude link). KEYS: run hash, settled set, then one hash per extra read.
 * ARGV: the `stop:<target>` field, the settle member ('' = none), then one field per extra read.
 * Returns {id, abortReason, stop, options, settled 0/1, ...extra values}; a missing value is nil.
 */
const GATE_LUA = `
local h = redis.call('HMGET', KEYS[1], 'id', 'abortReason', ARGV[1], 'options')
local settled = 0
if ARGV[2] ~= '' then settled = redis.call('SISMEMBER', KEYS[2], ARGV[2]) end
local out = {h[1], h[2], h[3], h[4], settled}
for i = 3, #KEYS do out[#out + 1] = redis.call('HGET', KEYS[i], ARGV[i]) end
return out
`;

/**
 * Issue 11.4: GATE_LUA for the users of a sync batch (jobs/sync-batch.ts) in one call. KEYS: run hash,
 * settled set, then per user its extra read hashes. ARGV: the `stop:<target>` field, the number of
 * extra reads per user, then per user its settle member and its read fields.
 * Returns {id, abortReason, stop, options, then per user: settled 0/1, ...extra values}.
 */
const GATE_MANY_LUA = `
local h = redis.call('HMGET', KEYS[1], 'id', 'abortReason', ARGV[1], 'options')
local out = {h[1], h[2], h[3], h[4]}
local r = tonumber(ARGV[2])
local a, k = 3, 3
while a <= #ARGV do
  out[#out + 1] = redis.call('SISMEMBER', KEYS[2], ARGV[a])
  for i = 1, r do out[#out + 1] = redis.call('HGET', KEYS[k + i - 1], ARGV[a + i]) end
  a = a + 1 + r
  k = k + r
end
return out
`;

/** The commands `defineCommand` adds (ioredis loads each script once, then calls it by sha). */
export interface ScriptCommands {
  psRecord(numKeys: number, ...args: (string | number)[]): Promise<number>;
  psPending(numKeys: number, ...args: (string | number)[]): Promise<number>;
  psFinish(numKeys: number, ...args: (string | number)[]): Promise<number>;
  psScanCas(numKeys: number, ...args: (string | number)[]): Promise<number>;
  psFinishIfDone(numKeys: number, ...args: (string | number)[]): Promise<string | null>;
  psRecordFinish(numKeys: number, ...args: (string | number)[]): Promise<[number, string]>;
  psGate(numKeys: number, ...args: (string | number)[]): Promise<(string | number | null)[]>;
  psGateMany(numKeys: number, ...args: (string | number)[]): Promise<(string | number | null)[]>;
  psRecordMany(numKeys: number, ...args: (string | number)[]): Promise<(number | string)[]>;
}

export function withScripts(redis: Redis): Redis & ScriptCommands {
  const r = redis as Redis & Partial<ScriptCommands>;
  if (typeof r.psRecord !== 'function') {
    redis.defineCommand('psRecord', { lua: RECORD_LUA });
    redis.defineCommand('psPending', { lua: PENDING_LUA });
  }
  if (typeof r.psFinish !== 'function') {
    redis.defineCommand('psFinish', { lua: FINISH_LUA });
    redis.defineCommand('psScanCas', { lua: SCAN_CAS_LUA });
    redis.defineCommand('psFinishIfDone', { lua: FINISH_IF_DONE_LUA });
  }
  if (typeof r.psGate !== 'function') {
    redis.defineCommand('psRecordFinish', { lua: RECORD_FINISH_LUA });
    redis.defineCommand('psGate', { lua: GATE_LUA });
  }
  if (typeof r.psGateMany !== 'function') redis.defineCommand('psGateMany', { lua: GATE_MANY_LUA });
  if (typeof r.psRecordMany !== 'function') redis.defineCommand('psRecordMany', { lua: RECORD_MANY_LUA });
  return redis as Redis & ScriptCommands;
}
