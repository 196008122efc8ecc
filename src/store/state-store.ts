import type { Redis } from 'ioredis';
import { hashFields } from '../core/hashing.js';
import type { TargetId } from '../core/targets.js';
import type { FieldMap } from '../core/types.js';
import { readHashes, readHashesAndMembers } from './hash-read.js';
import { linkIdOf, upgradeLinks } from './links.js';
import { bumpIn, counterIndex } from './mutations.js';
import type { RedisLayout } from './redis-layout.js';
import {
  decodeBody,
  encodeState,
  keySetIdOf,
  keySetOf,
  type RawState,
  sameAsValue,
  splitState,
} from './state-codec.js';
import { encodeUnlinked, markerMatches, parseUnlinked, type UnlinkedMarker } from './unlinked-marker.js';

export type { UnlinkedMarker } from './unlinked-marker.js';

/** What profile-sync last wrote for one (target, user). */
export interface TargetState {
  /** sha256 of the payload's sorted-key JSON (hashing.ts); computed when read (not stored since issue 11.4). */
  readonly hash: string;
  /** The payload itself: the `previous` of the next write, and what issue 5 records when a user leaves. */
  readonly fields: FieldMap;
  /** Epoch ms of the write. */
  readonly writtenAt: number;
}

/**
 * A `saveWritten` to apply elsewhere (`writeOf`): HSETNX keysKey ksField ksJson (unless ''), HSET key
 * field value, HDEL unlinkedKey field, and the user's mutation counter bumped (mutations.ts).
 */
export interface StateWrite {
  key: string;
  unlinkedKey: string;
  keysKey: string;
  mutationsKey: string;
  /** The index of the user's mutation counter (mutations.ts `counterIndex`). */
  counter: number;
  field: string;
  value: string;
  /** The value's key list (state-codec.ts), re-added in the same call; '' when the payload is inline. */
  ksField: string;
  ksJson: string;
}

/** What `readChunk` answers: per target the states, and (with `prelude`) links and unlinked markers. */
export interface ChunkRead {
  states: (TargetState | null)[][];
  /** Source id -> Prelude user id, for the users that have one. */
  links: Map<string, string>;
  /** Prelude's unlinked markers (null without `prelude`). */
  unlinked: (UnlinkedMarker | null)[] | null;
  /** With `seen`: per user, whether the id is a member of that set (the scan's duplicate check). */
  seen?: boolean[];
}

/** How `getMany` treats the v1 values it reads (issue 11.4). */
export interface GetOptions {
  /** Rewrite v1 values as v2 (compare-and-set: a value written meanwhile is left alone). The scan's reads. */
  upgrade?: boolean;
}

/**
 * Per (target, user) state in one Redis hash per target (`{p}:state:<target>`, field = user id): one
 * HMGET answers a whole scan chunk, and HSCAN enumerates every user profile-sync knows per target
 * (issue 5 compares that set with a complete scan to find users who left). Values are encoded by
 * state-codec.ts (issue 11.4: no stored hash, key names once per install in `{p}:state:<target>:keys`).
 */
export class StateStore {
  /** Per target: key set id -> key list JSON, as stored (read or written by this process). */
  private readonly keySets = new Map<TargetId, Map<string, string>>();
  /** Per target: key set ids whose stored list is another one (a collision): such payloads go inline. */
  private readonly collided = new Map<TargetId, Set<string>>();

  constructor(
    private readonly redis: Redis,
    private readonly layout: RedisLayout,
  ) {}

  /** Where `get` reads (hash, field), for a caller that reads it in a batch of its own (issue 11.2). */
  readOf(target: TargetId, userId: string): readonly [string, string] {
    return [this.layout.state(target), userId];
  }

  /** Decodes what was read at `readOf` (v1 or v2; a v2 value's key list from this process's cache, else Redis). */
  async parse(target: TargetId, userId: string, raw: string | null): Promise<TargetState | null> {
    return (await this.decodeAll(target, [userId], [raw]))[0] ?? null;
  }

  async get(target: TargetId, userId: string): Promise<TargetState | null> {
    return (await this.getMany(target, [userId]))[0] ?? null;
  }

  async getMany(target: TargetId, userIds: string[], opts: GetOptions = {}): Promise<(TargetState | null)[]> {
    if (userIds.length === 0) return [];
    const raw = await this.redis.hmget(this.layout.state(target), ...userIds);
    const out = await this.decodeAll(target, userIds, raw);
    if (opts.upgrade) await this.upgrade(target, userIds, raw);
    return out;
  }

  /**
   * The states of a batch of users in several targets at once: one Lua call (hash-read.ts) instead of
   * one HMGET per target (issue 11.4: the scan's reads).
   */
  async getManyTargets(
    targets: readonly TargetId[],
    userIds: string[],
    opts: GetOptions = {},
  ): Promise<(TargetState | null)[][]> {
    return (await this.readChunk(targets, userIds, opts)).states;
  }

  /**
   * Everything the scan reads for a chunk of users, in one call (issue 11): the states of `targets`
   * and, with `prelude`, the links (`{p}:links:prelude`, source id -> Prelude id) and unlinked markers.
   */
  async readChunk(
    targets: readonly TargetId[],
    userIds: string[],
    opts: GetOptions & { prelude?: boolean; seen?: string } = {},
  ): Promise<ChunkRead> {
    const extra = opts.prelude ? [this.layout.links(), this.layout.unlinked('prelude')] : [];
    const seen: { seen?: boolean[] } = opts.seen !== undefined ? { seen: [] } : {};
    if (userIds.length === 0)
      return { states: targets.map(() => []), links: new Map(), unlinked: opts.prelude ? [] : null, ...seen };
    const keys = [...targets.map((t) => this.layout.state(t)), ...extra];
    let raw: (string | null)[][];
    if (opts.seen !== undefined) {
      const read = await readHashesAndMembers(this.redis, keys, userIds, opts.seen);
      raw = read.values;
      seen.seen = read.members;
    } else raw = await readHashes(this.redis, keys, userIds);
    const states = await Promise.all(
      targets.map(async (target, k) => {
        const values = raw[k]!;
        const out = await this.decodeAll(target, userIds, values);
        if (opts.upgrade) await this.upgrade(target, userIds, values);
        return out;
      }),
    );
    const links = new Map<string, string>();
    if (!opts.prelude) return { states, links, unlinked: null, ...seen };
    const linkValues = raw[targets.length]!;
    linkValues.forEach((v, i) => {
      if (v !== null) links.set(userIds[i]!, linkIdOf(v)!);
    });
    // Issue 11.4: old-format links (how/when in a second hash) rewritten as the states are.
    if (opts.upgrade) await upgradeLinks(this.redis, this.layout, userIds, linkValues);
    return { states, links, unlinked: raw[targets.length + 1]!.map(parseUnlinked), ...seen };
  }

  /** What `saveWritten` writes, for a caller that writes it in a call of its own (issue 11.2). */
  async writeOf(target: TargetId, userId: string, fields: FieldMap, at = Date.now()): Promise<StateWrite> {
    const value = await this.encode(target, userId, fields, at);
    // As saveWritten: the value's key list again in the same call (a Redis emptied under this process).
    const ks = keySetOf(fields);
    const inline = this.collided.get(target)?.has(ks.id) ?? false;
    return {
      key: this.layout.state(target),
      unlinkedKey: this.layout.unlinked(target),
      keysKey: this.layout.stateKeys(target),
      mutationsKey: this.layout.mutations(),
      counter: counterIndex(userId),
      field: userId,
      value,
      ksField: inline ? '' : ks.id,
      ksJson: inline ? '' : ks.json,
    };
  }

  /** Records a successful write; clears any unlinked marker. */
  async saveWritten(
    target: TargetId,
    userId: string,
    fields: FieldMap,
    at = Date.now(),
  ): Promise<TargetState> {
    const value = await this.encode(target, userId, fields, at);
    const m = this.redis.multi();
    // The value's key list again, in the same transaction (a no-op when present): a Redis emptied
    // under this process, whose cache still knows the list, never leaves a value it cannot decode.
    const ks = keySetOf(fields);
    if (!this.collided.get(target)?.has(ks.id)) m.hsetnx(this.layout.stateKeys(target), ks.id, ks.json);
    m.hset(this.layout.state(target), userId, value).hdel(this.layout.unlinked(target), userId);
    await bumpIn(m, this.layout.mutations(), [userId]).exec();
    return plainState(fields, at);
  }

  /**
   * The stored value of a payload (state-codec.ts), its key list stored first when this process has not
   * seen it stored yet (HSETNX, then a check that the id names this list: else the payload goes inline).
   */
  async encode(target: TargetId, userId: string, fields: FieldMap, at: number): Promise<string> {
    const ks = keySetOf(fields);
    const known = this.knownKeySets(target);
    if (known.get(ks.id) !== ks.json && !this.collided.get(target)?.has(ks.id)) {
      const key = this.layout.stateKeys(target);
      if ((await this.redis.hsetnx(key, ks.id, ks.json)) === 0) {
        const stored = await this.redis.hget(key, ks.id);
        if (stored !== ks.json) {
          if (!this.collided.has(target)) this.collided.set(target, new Set());
          this.collided.get(target)!.add(ks.id);
        }
      }
      if (!this.collided.get(target)?.has(ks.id)) known.set(ks.id, ks.json);
    }
    return encodeState(userId, fields, at, ks, this.collided.get(target)?.has(ks.id) ?? false);
  }

  /**
   * Whether `next` is exactly the payload last written (the scan's "unchanged"): a string compare of
   * encodings for v2 values, the stored hash for v1; no payload is decoded.
   */
  sameAs(target: TargetId, state: TargetState | null, userId: string, next: FieldMap): boolean {
    if (!state) return false;
    if (state instanceof StoredState) return sameAsValue(state.raw, userId, next, this.knownKeySets(target));
    return state.hash === hashFields(next);
  }

  /** Drops the state of a user (issue 5: after a removal, or `forget`); counted (deletions.ts, issue 11). */
  async remove(target: TargetId, userId: string): Promise<void> {
    const m = this.redis
      .multi()
      .incr(this.layout.stateRemovals(target))
      .hdel(this.layout.state(target), userId)
      .hdel(this.layout.unlinked(target), userId);
    await bumpIn(m, this.layout.mutations(), [userId]).exec();
  }

  async getUnlinked(target: TargetId, userId: string): Promise<UnlinkedMarker | null> {
    return parseUnlinked(await this.redis.hget(this.layout.unlinked(target), userId));
  }

  async getUnlinkedMany(target: TargetId, userIds: string[]): Promise<(UnlinkedMarker | null)[]> {
    if (userIds.length === 0) return [];
    return (await this.redis.hmget(this.layout.unlinked(target), ...userIds)).map(parseUnlinked);
  }

  async markUnlinked(target: TargetId, userId: string, fields: FieldMap, at = Date.now()): Promise<void> {
    await this.markUnlinkedMany(target, [[userId, fields]], at);
  }

  /** `markUnlinked` for several users in one call (a scan chunk's users no lookup found). */
  async markUnlinkedMany(
    target: TargetId,
    users: readonly (readonly [string, FieldMap])[],
    at = Date.now(),
  ): Promise<void> {
    if (users.length === 0) return;
    const pairs = users.flatMap(([id, fields]) => [id, encodeUnlinked(at, hashFields(fields))]);
    const m = this.redis.multi().hset(this.layout.unlinked(target), ...pairs);
    await bumpIn(
      m,
      this.layout.mutations(),
      users.map(([id]) => id),
    ).exec();
  }

  /** How many users profile-sync holds a written state for in this target. */
  async count(target: TargetId): Promise<number> {
    return this.redis.hlen(this.layout.state(target));
  }

  /** Every user with a written state in this target, in batches (HSCAN: memory flat, no blocking). */
  async *users(target: TargetId, batch = 1000): AsyncIterable<{ userId: string; state: TargetState }> {
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(this.layout.state(target), cursor, 'COUNT', batch);
      cursor = next;
      const ids: string[] = [];
      const values: (string | null)[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) {
        ids.push(flat[i]!);
        values.push(flat[i + 1] ?? null);
      }
      const states = await this.decodeAll(target, ids, values);
      for (const [i, state] of states.entries()) if (state) yield { userId: ids[i]!, state };
    } while (cursor !== '0');
  }

  private knownKeySets(target: TargetId): Map<string, string> {
    let m = this.keySets.get(target);
    if (!m) {
      m = new Map();
      this.keySets.set(target, m);
    }
    return m;
  }

  /** Wraps a batch of stored values, first reading (one HMGET) the key lists this process has not seen. */
  private async decodeAll(
    target: TargetId,
    userIds: readonly string[],
    values: readonly (string | null | undefined)[],
  ): Promise<(TargetState | null)[]> {
    const known = this.knownKeySets(target);
    const missing = new Set<string>();
    let last: string | undefined;
    for (const v of values) {
      if (!v) continue;
      const id = keySetIdOf(v, last);
      if (id === undefined) continue;
      last = id;
      if (!known.has(id)) missing.add(id);
    }
    if (missing.size) {
      const ids = [...missing];
      const lists = await this.redis.hmget(this.layout.stateKeys(target), ...ids);
      ids.forEach((id, i) => {
        if (lists[i]) known.set(id, lists[i]!);
      });
    }
    return userIds.map((userId, i) => {
      const v = values[i];
      return v ? new StoredState(v, userId, known) : null;
    });
  }

  /**
   * Rewrites the v1 values of a batch as v2, each only if it still holds what was read (one Lua call):
   * the upgrade of an install from before issue 11.4 happens during its first scan, user by user.
   */
  private async upgrade(target: TargetId, userIds: string[], raw: (string | null)[]): Promise<void> {
    const args: string[] = [];
    const lists = new Map<string, string>();
    for (const [i, v] of raw.entries()) {
      if (!v?.startsWith('{')) continue;
      const old = splitState(v);
      if (old.v !== 1) continue;
      args.push(userIds[i]!, v, await this.encode(target, userIds[i]!, old.fields, old.writtenAt));
      const ks = keySetOf(old.fields);
      if (!this.collided.get(target)?.has(ks.id)) lists.set(ks.id, ks.json);
    }
    if (args.length === 0) return;
    const m = this.redis.multi();
    for (const [id, json] of lists) m.hsetnx(this.layout.stateKeys(target), id, json); // as in saveWritten
    await m.eval(UPGRADE_LUA, 1, this.layout.state(target), ...args).exec();
  }
}

/** KEYS: state hash. ARGV: (field, expected old value, new value) triples. Returns the number rewritten. */
const UPGRADE_LUA = `
local n = 0
for i = 1, #ARGV, 3 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    n = n + 1
  end
end
return n
`;

const keyLists = new Map<string, string[]>();
function keyList(json: string): string[] {
  let keys = keyLists.get(json);
  if (!keys) {
    keys = JSON.parse(json) as string[];
    if (keyLists.size < 10_000) keyLists.set(json, keys);
  }
  return keys;
}

function plainState(fields: FieldMap, writtenAt: number): TargetState {
  let hash: string | undefined;
  return {
    get hash() {
      hash ??= hashFields(fields);
      return hash;
    },
    fields,
    writtenAt,
  };
}

/**
 * A state as read: the stored value, decoded (payload, hash) only when asked. The scan asks neither:
 * `sameAs` compares encodings, so creating one of these must cost next to nothing.
 */
class StoredState implements TargetState {
  // Private (#): two reads of the same value compare equal (`toEqual`) whatever each has decoded.
  readonly #userId: string;
  readonly #keyLists: ReadonlyMap<string, string>;
  #parsed?: RawState;
  #decoded?: FieldMap;
  #digest?: string;

  constructor(
    readonly raw: string,
    userId: string,
    keyLists: ReadonlyMap<string, string>,
  ) {
    this.#userId = userId;
    this.#keyLists = keyLists;
  }

  #split(): RawState {
    this.#parsed ??= splitState(this.raw);
    return this.#parsed;
  }

  get writtenAt(): number {
    return this.#split().writtenAt;
  }

  get fields(): FieldMap {
    if (!this.#decoded) {
      const r = this.#split();
      if (r.v === 1) this.#decoded = r.fields;
      else {
        const keys = r.keySetId ? this.#keyLists.get(r.keySetId) : undefined;
        this.#decoded = decodeBody(this.#userId, r.body, keys ? keyList(keys) : undefined);
      }
    }
    return this.#decoded;
  }

  get hash(): string {
    if (!this.#digest) {
      const r = this.#split();
      this.#digest = r.v === 1 ? r.hash : hashFields(this.fields);
    }
    return this.#digest;
  }
}

/**
 * Whether a user found unlinked should be probed again: only when the payload changed (the source user
 * changed) or the marker is older than the recheck interval (`UNLINKED_RECHECK`, default 24 h).
 */
export function unlinkedIsFresh(
  marker: UnlinkedMarker | null,
  nextHash: string,
  recheckMs: number,
  now: number,
): boolean {
  return marker !== null && now - marker.at < recheckMs && markerMatches(marker, nextHash);
}
