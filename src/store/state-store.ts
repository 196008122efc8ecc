import type { Redis } from 'ioredis';
import { hashFields } from '../core/hashing.js';
import type { TargetId } from '../core/targets.js';
import type { FieldMap } from '../core/types.js';
import type { RedisLayout } from './redis-layout.js';

/** What profile-sync last wrote for one (target, user). */
export interface TargetState {
  /** sha256 of the payload's sorted-key JSON (hashing.ts). */
  hash: string;
  /** The payload itself: the `previous` of the next write, and what issue 5 records when a user leaves. */
  fields: FieldMap;
  /** Epoch ms of the write. */
  writtenAt: number;
}

/** Prelude answered `user_not_found` for this user (seed 004): not probed again until it may have changed. */
export interface UnlinkedMarker {
  /** Epoch ms when the target last said it does not know the user. */
  at: number;
  /** Hash of the payload we tried to write then: a different hash means the source user changed. */
  hash: string;
}

/** A `saveWritten` to apply elsewhere: HSET key field value, HDEL unlinkedKey field (`writeOf`). */
export interface StateWrite {
  key: string;
  unlinkedKey: string;
  field: string;
  value: string;
}

interface StoredState {
  h: string;
  f: FieldMap;
  t: number;
}

/**
 * Per (target, user) state in one Redis hash per target (`{p}:state:<target>`, field = user id): one
 * HMGET answers a whole scan chunk, and HSCAN enumerates every user profile-sync knows per target
 * (issue 5 compares that set with a complete scan to find users who left).
 */
export class StateStore {
  constructor(
    private readonly redis: Redis,
    private readonly layout: RedisLayout,
  ) {}

  /** Where `get` reads (hash, field), for a caller that reads it in a batch of its own (issue 11.2). */
  readOf(target: TargetId, userId: string): readonly [string, string] {
    return [this.layout.state(target), userId];
  }

  /** Decodes what was read at `readOf`. */
  parse(raw: string | null): TargetState | null {
    return parseState(raw);
  }

  async get(target: TargetId, userId: string): Promise<TargetState | null> {
    return parseState(await this.redis.hget(this.layout.state(target), userId));
  }

  async getMany(target: TargetId, userIds: string[]): Promise<(TargetState | null)[]> {
    if (userIds.length === 0) return [];
    const raw = await this.redis.hmget(this.layout.state(target), ...userIds);
    return raw.map(parseState);
  }

  /** What `saveWritten` writes, for a caller that writes it in a call of its own (issue 11.2). */
  writeOf(target: TargetId, userId: string, fields: FieldMap, at = Date.now()): StateWrite {
    const stored: StoredState = { h: hashFields(fields), f: fields, t: at };
    const [key, unlinkedKey] = [this.layout.state(target), this.layout.unlinked(target)];
    return { key, unlinkedKey, field: userId, value: JSON.stringify(stored) };
  }

  /** Records a successful write; clears any unlinked marker. */
  async saveWritten(
    target: TargetId,
    userId: string,
    fields: FieldMap,
    at = Date.now(),
  ): Promise<TargetState> {
    const state: TargetState = { hash: hashFields(fields), fields, writtenAt: at };
    const stored: StoredState = { h: state.hash, f: fields, t: at };
    await this.redis
      .multi()
      .hset(this.layout.state(target), userId, JSON.stringify(stored))
      .hdel(this.layout.unlinked(target), userId)
      .exec();
    return state;
  }

  /** Drops the state of a user (issue 5: after a removal, or `forget`). */
  async remove(target: TargetId, userId: string): Promise<void> {
    await this.redis
      .multi()
      .hdel(this.layout.state(target), userId)
      .hdel(this.layout.unlinked(target), userId)
      .exec();
  }

  async getUnlinked(target: TargetId, userId: string): Promise<UnlinkedMarker | null> {
    return parseUnlinked(await this.redis.hget(this.layout.unlinked(target), userId));
  }

  async getUnlinkedMany(target: TargetId, userIds: string[]): Promise<(UnlinkedMarker | null)[]> {
    if (userIds.length === 0) return [];
    return (await this.redis.hmget(this.layout.unlinked(target), ...userIds)).map(parseUnlinked);
  }

  async markUnlinked(target: TargetId, userId: string, fields: FieldMap, at = Date.now()): Promise<void> {
    const marker: UnlinkedMarker = { at, hash: hashFields(fields) };
    await this.redis.hset(this.layout.unlinked(target), userId, JSON.stringify(marker));
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
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const state = parseState(flat[i + 1] ?? null);
        if (state) yield { userId: flat[i]!, state };
      }
    } while (cursor !== '0');
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
  return marker !== null && marker.hash === nextHash && now - marker.at < recheckMs;
}

function parseState(raw: string | null): TargetState | null {
  if (!raw) return null;
  const s = JSON.parse(raw) as StoredState;
  return { hash: s.h, fields: s.f, writtenAt: s.t };
}

function parseUnlinked(raw: string | null): UnlinkedMarker | null {
  return raw ? (JSON.parse(raw) as UnlinkedMarker) : null;
}
