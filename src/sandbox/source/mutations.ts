import { hash32, hashUnit, pick, prng } from '../kit/prng.js';
import { FIRST_NAMES, LAST_NAMES } from './synthetic-users.js';
import type { UserStore } from './user-store.js';

export const MUTABLE_FIELDS = ['firstName', 'lastName', 'email'] as const;
export type MutableField = (typeof MUTABLE_FIELDS)[number];

/**
 * `round(share * users)` user ids, the same ones for the same (seed, set of ids): the ids with the lowest
 * hash of (seed, id). Returned in id order.
 */
export function chooseShare(ids: string[], share: number, seed: number): string[] {
  const n = Math.round(share * ids.length);
  if (n <= 0) return [];
  const chosen = ids
    .map((id) => ({ id, h: hashUnit(seed, id) }))
    .sort((a, b) => a.h - b.h || (a.id < b.id ? -1 : 1))
    .slice(0, n)
    .map((x) => x.id);
  return chosen.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function different<T>(rand: () => number, items: readonly T[], current: unknown): T {
  for (let i = 0; i < 8; i++) {
    const v = pick(rand, items);
    if (v !== current) return v;
  }
  return items.find((v) => v !== current)!;
}

/**
 * Changes the given fields of a deterministic share of users, each to a value that differs from the
 * current one (a renamed user, a new address), and returns the changed ids in id order.
 */
export function mutateUsers(
  store: UserStore,
  share: number,
  seed: number,
  fields: readonly MutableField[] = MUTABLE_FIELDS,
): string[] {
  const changed = chooseShare(store.ids(), share, seed);
  for (const id of changed) {
    const rand = prng(hash32(seed, `mutate:${id}`));
    const record = store.get(id)!;
    const next: Record<string, unknown> = {};
    if (fields.includes('firstName')) next.firstName = different(rand, FIRST_NAMES, record.firstName);
    if (fields.includes('lastName')) next.lastName = different(rand, LAST_NAMES, record.lastName);
    if (fields.includes('email')) {
      const old =
        typeof record.email === 'string' ? record.email : `user${hash32(seed, id) % 100_000}@example.com`;
      const at = old.lastIndexOf('@');
      next.email = `${old.slice(0, at)}.m${seed}${old.slice(at)}`;
    }
    store.patch(id, next);
  }
  return changed;
}
