import { hash32 } from '../kit/index.js';

// Crockford's base32 in lower case, as in the facts file's example `usr_01jqebhswje1ka1z7ahr9rfsgt`.
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

/** A Prelude user id: `usr_` then 26 lowercase Crockford base32 characters (prelude-users-api.md). */
export const USR_ID_PATTERN = /^usr_[0-9a-hjkmnp-tv-z]{26}$/;

export function isUsrId(id: string): boolean {
  return USR_ID_PATTERN.test(id);
}

/** 2025-03-27T00:00:00Z: about when the facts file's example ids were minted. */
export const USR_EPOCH_MS = Date.UTC(2025, 2, 27);

function base32(value: number, chars: number): string {
  let out = '';
  let v = value;
  for (let i = 0; i < chars; i++) {
    out = ALPHABET[v % 32] + out;
    v = Math.floor(v / 32);
  }
  return out;
}

/**
 * A ULID-like `usr_` id: 10 characters of millisecond time, then 16 characters (80 bits) drawn from
 * hashes of `(seed, key)`, so the same key gives the same id on every run with the same seed.
 */
export function usrId(seed: number, key: string, timeMs: number): string {
  const a = hash32(seed, `usr:a:${key}`);
  const b = hash32(seed, `usr:b:${key}`);
  const c = hash32(seed, `usr:c:${key}`);
  // 80 bits: 30 + 30 + 20 bits of three independent hashes.
  const tail = base32(a >>> 2, 6) + base32(b >>> 2, 6) + base32(c >>> 12, 4);
  return `usr_${base32(Math.max(0, Math.floor(timeMs)), 10)}${tail}`;
}

/** A deterministic creation time for a seeded user: within the year after USR_EPOCH_MS. */
export function seededCreatedAt(seed: number, key: string): number {
  return USR_EPOCH_MS + (hash32(seed, `created:${key}`) % (365 * 24 * 3600)) * 1000;
}
