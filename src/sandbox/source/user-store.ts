import type { UserRecord } from './synthetic-users.js';

/** `GET /user` sort keys (seed 002's API family): Camunda's names. */
export const SORT_KEYS = {
  userId: 'id',
  firstName: 'firstName',
  lastName: 'lastName',
  email: 'email',
} as const;
export type SortBy = keyof typeof SORT_KEYS;
export type SortOrder = 'asc' | 'desc';

/** Camunda's `GET /user` filters that the sandbox supports. Matching is case-sensitive, like a SQL `=`. */
export interface UserFilter {
  id?: string;
  idIn?: string[];
  firstName?: string;
  firstNameLike?: string;
  lastName?: string;
  lastNameLike?: string;
  email?: string;
  emailLike?: string;
}

/** A stored record: a user, or (injected raw for tests) anything at all. */
export type StoredRecord = Record<string, unknown>;

interface Entry {
  key: string;
  record: StoredRecord;
}

/**
 * The source's users keyed by id. A raw record without a string id gets an internal key that no URL can
 * reach. Lists are ordered by a key and then by id (code-unit order), so paging is stable; sorted views are
 * cached until the next write, so paging through N users costs one sort, not one per page.
 */
export class UserStore {
  private readonly byKey = new Map<string, Entry>();
  private byId: Entry[] | null = null;
  private readonly sorted = new Map<string, Entry[]>();
  private rawCount = 0;

  constructor(users: Iterable<StoredRecord> = []) {
    for (const u of users) this.put(u);
  }

  get size(): number {
    return this.byKey.size;
  }

  get(id: string): StoredRecord | undefined {
    return this.byKey.get(id)?.record;
  }

  has(id: string): boolean {
    return this.byKey.has(id);
  }

  /** Stores a record (replacing one with the same id). Returns its key. */
  put(record: StoredRecord): string {
    const key = typeof record.id === 'string' ? record.id : `\u0000raw-${++this.rawCount}`;
    const existing = this.byKey.get(key);
    if (existing) {
      existing.record = record;
      this.sorted.clear();
    } else {
      this.byKey.set(key, { key, record });
      this.invalidate();
    }
    return key;
  }

  /**
   * Replaces the profile fields of an existing user in place: O(1), and the id order stays valid. Fields
   * not given become null, as Camunda's `UserProfileDto.update` copies all four.
   */
  updateProfile(id: string, profile: Omit<UserRecord, 'id'>): boolean {
    const entry = this.byKey.get(id);
    if (!entry) return false;
    entry.record.firstName = profile.firstName ?? null;
    entry.record.lastName = profile.lastName ?? null;
    entry.record.email = profile.email ?? null;
    this.sorted.clear();
    return true;
  }

  /** Merges fields into a record as given (tests use it to plant odd values). */
  patch(id: string, fields: StoredRecord): StoredRecord | undefined {
    const entry = this.byKey.get(id);
    if (!entry) return undefined;
    Object.assign(entry.record, fields, { id: entry.record.id });
    this.sorted.clear();
    return entry.record;
  }

  delete(id: string): boolean {
    if (!this.byKey.delete(id)) return false;
    this.invalidate();
    return true;
  }

  /** All records in id order. */
  all(): StoredRecord[] {
    return this.ordered().map((e) => e.record);
  }

  /** Ids of the records that are users (string ids), in id order. */
  ids(): string[] {
    return this.ordered()
      .filter((e) => typeof e.record.id === 'string')
      .map((e) => e.key);
  }

  query(filter: UserFilter, sort?: { by: SortBy; order: SortOrder }, firstResult = 0, maxResults?: number) {
    const base = sort ? this.sortedBy(sort.by, sort.order) : this.ordered();
    const test = compileFilter(filter);
    const end = maxResults === undefined ? Number.POSITIVE_INFINITY : firstResult + maxResults;
    if (!test) return base.slice(firstResult, end).map((e) => e.record);
    const out: StoredRecord[] = [];
    let seen = 0;
    for (const e of base) {
      if (!test(e.record)) continue;
      if (seen >= firstResult && seen < end) out.push(e.record);
      seen += 1;
      if (seen >= end) break;
    }
    return out;
  }

  count(filter: UserFilter): number {
    const test = compileFilter(filter);
    if (!test) return this.byKey.size;
    let n = 0;
    for (const e of this.byKey.values()) if (test(e.record)) n += 1;
    return n;
  }

  clear(): void {
    this.byKey.clear();
    this.rawCount = 0;
    this.invalidate();
  }

  private invalidate(): void {
    this.byId = null;
    this.sorted.clear();
  }

  private ordered(): Entry[] {
    this.byId ??= [...this.byKey.values()].sort((a, b) => compare(a.key, b.key));
    return this.byId;
  }

  private sortedBy(by: SortBy, order: SortOrder): Entry[] {
    const cacheKey = `${by}:${order}`;
    let list = this.sorted.get(cacheKey);
    if (!list) {
      const field = SORT_KEYS[by];
      const sign = order === 'asc' ? 1 : -1;
      list = [...this.ordered()].sort(
        (a, b) => sign * compareValues(a.record[field], b.record[field]) || compare(a.key, b.key),
      );
      this.sorted.set(cacheKey, list);
    }
    return list;
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Strings in code-unit order; a missing (null, absent, non-string) value sorts before any string. */
function compareValues(a: unknown, b: unknown): number {
  const as = typeof a === 'string';
  const bs = typeof b === 'string';
  if (as && bs) return compare(a, b);
  return as ? 1 : bs ? -1 : 0;
}

/** SQL LIKE as Camunda passes it through: `%` any run, `_` any one character. */
function likeToRegex(pattern: string): RegExp {
  const body = pattern
    .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    .replace(/%/g, '.*')
    .replace(/_/g, '.');
  return new RegExp(`^${body}$`, 's');
}

function compileFilter(f: UserFilter): ((r: StoredRecord) => boolean) | undefined {
  const tests: ((r: StoredRecord) => boolean)[] = [];
  if (f.id !== undefined) tests.push((r) => r.id === f.id);
  if (f.idIn !== undefined) {
    const set = new Set(f.idIn);
    tests.push((r) => typeof r.id === 'string' && set.has(r.id));
  }
  for (const field of ['firstName', 'lastName', 'email'] as const) {
    const eq = f[field];
    if (eq !== undefined) tests.push((r) => r[field] === eq);
    const like = f[`${field}Like`];
    if (like !== undefined) {
      const re = likeToRegex(like);
      tests.push((r) => typeof r[field] === 'string' && re.test(r[field] as string));
    }
  }
  if (tests.length === 0) return undefined;
  return (r) => tests.every((t) => t(r));
}
