import type { ChainableCommander } from 'ioredis';

/**
 * Issue 11: the mutation counters that keep the scan's block conclusions honest (scan-blocks.ts).
 *
 * `{p}:mutations` is one string of 65,536 16-bit counters (128 KiB, BITFIELD). Every change of what the
 * scan's decision reads for a user (a target state written or removed, an unlinked marker set or
 * cleared, a Prelude link added or dropped) bumps the counter of the user's bucket, in the same call as
 * the change. A block conclusion ("these ~64 users were found unchanged") records the sum of its users'
 * counters as read before their states were; it holds only while that sum is the same. So a write the
 * scan did not decide (a late retry, `retry-failed`, `POST /users/{id}/sync`, `forget`, `links import`)
 * sends the users of its bucket's blocks (about 15 per bucket at 1M users) back to the full compare once.
 *
 * A counter wraps at 65,536: a conclusion survives a bucket changed exactly 65,536 times between two
 * scans. The bucket is FNV-1a of the user id, so the writers and the scan agree without a lookup.
 */
export const MUTATION_BUCKETS = 65_536;

/** FNV-1a (32 bit, unsigned) of a string's UTF-16 code units. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The bucket of a user id: the low 16 bits of its FNV-1a. */
export function mutationBucket(userId: string): number {
  return fnv1a(userId) & (MUTATION_BUCKETS - 1);
}

/**
 * The first 32 bits of the string are its epoch, set (non-zero, at random) by the scan that finds it
 * 0: a string deleted and re-created by a bump starts at 0, and the scan then drops every block
 * conclusion (scan-blocks.ts) before it trusts one again. Counters start after it.
 */
export const EPOCH_SLOTS = 2;

/** The BITFIELD u16 index (`#<n>`) of a user's counter. */
export function counterIndex(userId: string): number {
  return mutationBucket(userId) + EPOCH_SLOTS;
}

/** Adds the bumps of `userIds` to a transaction (one BITFIELD call for them all). */
export function bumpIn(m: ChainableCommander, key: string, userIds: readonly string[]): ChainableCommander {
  if (userIds.length === 0) return m;
  const args: string[] = ['OVERFLOW', 'WRAP'];
  for (const id of userIds) args.push('INCRBY', 'u16', `#${counterIndex(id)}`, '1');
  return m.call('BITFIELD', key, ...args);
}

/** Lua: bumps the counter at index `index` (a Lua expression, `counterIndex`) of the string `key`. */
export function bumpLua(key: string, index: string): string {
  return `redis.call('BITFIELD', ${key}, 'OVERFLOW', 'WRAP', 'INCRBY', 'u16', '#' .. ${index}, 1)`;
}
