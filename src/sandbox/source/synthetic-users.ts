import { hash32, pick, prng } from '../kit/prng.js';

/**
 * A user record as the source stores it. Generated and validated users have exactly these four keys,
 * a missing value being `null` (Camunda answers every key, never an absent one: vendor-facts.md);
 * records injected raw through the inspection API may hold anything.
 */
// A type, not an interface, so that it is assignable to the store's Record<string, unknown>.
export type UserRecord = {
  id: string;
  firstName?: string | null;
  lastName?: string | null;
  email?: string | null;
};

// biome-ignore format: a word list reads better packed
export const FIRST_NAMES = [
  'Anna', 'Ben', 'Chloé', 'David', 'Émile', 'Fatima', 'Gérard', 'Hannah', 'Iñaki', 'Jürgen', 'Kofi',
  'Léa', 'Mateo', 'Nuño', 'Olivia', 'Paweł', 'Quentin', 'Renée', 'Søren', 'Tomás', 'Ümit', 'Valérie',
  'Wojciech', 'Xavier', 'Yusuf', 'Zoë', 'José', 'Björn', 'Łukasz', 'François', 'Ngọc', 'Ana María',
  '太郎', '美咲', '伟', '娜', '민준', 'Дмитрий', 'Σοφία', 'محمد',
] as const;

// biome-ignore format: a word list reads better packed
export const LAST_NAMES = [
  'Smith', 'Müller', 'García', "O'Brien", 'Nakamura', 'Dvořák', 'Åberg', 'van der Berg', 'Kowalski',
  'Nguyễn', 'Rossi', 'Dubois', 'Johansson', 'Fernández', 'Öztürk', 'Papadopoulos', 'Mbeki', 'Ødegaard',
  'Jones-Lloyd', 'de la Cruz', '山田', '王', '김', 'Иванов', 'Χατζής',
] as const;

const DOMAINS = ['example.com', 'example.org', 'mail.example.net', 'corp.example'] as const;

/**
 * Ids that need percent-encoding or trip naive clients. Every tenth user gets one, in this order, so even a
 * 50-user sandbox has a space, a slash, a colon, a percent sign and a plus. None contains `,` (`idIn` is
 * comma-separated) and none is `.`/`..` (URL parsers collapse those segments even when encoded).
 */
const AWKWARD_IDS: readonly ((n: string) => string)[] = [
  (n) => `user ${n}`,
  (n) => `ou=sales/${n}`,
  (n) => `ldap:${n}`,
  (n) => `100%-${n}`,
  (n) => `a+b.${n}`,
  (n) => `jürgen.müller-${n}`,
  (n) => `用户-${n}`,
  (n) => `o'brien&co?${n}#x`,
  (n) => `emoji-🙂-${n}`,
  (n) => `MiXeD-Case-${n}`,
];

/** ASCII for an email local part: accents stripped, anything else dropped. */
function asciiLocal(text: string): string {
  return text
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/ł/g, 'l')
    .replace(/Ł/g, 'L')
    .replace(/ø/g, 'o')
    .replace(/Ø/g, 'O')
    .replace(/[^A-Za-z0-9]/g, '');
}

/** The id of the i-th synthetic user (1-based): `user-000123`, or an awkward one for every tenth. */
export function syntheticId(i: number): string {
  const n = String(i).padStart(6, '0');
  if (i % 10 !== 3) return `user-${n}`;
  return AWKWARD_IDS[Math.floor(i / 10) % AWKWARD_IDS.length]!(n);
}

/**
 * The i-th synthetic user (1-based) for a seed. Each user has its own PRNG stream, so user 17 is the same
 * whether the sandbox holds 50 users or a million.
 *
 * Shares (approximate): last name null 12%; email null 8%; mixed-case email 15%. (The draws for the
 * former "absent" shares are kept, so every other value stays what it was.)
 */
export function syntheticUser(seed: number, i: number): UserRecord {
  const rand = prng(hash32(seed, `user:${i}`));
  const id = syntheticId(i);
  const firstName = pick(rand, FIRST_NAMES);
  const lastName = pick(rand, LAST_NAMES);
  const user: UserRecord = { id, firstName, lastName: null, email: null };
  const l = rand();
  if (l >= 0.12) user.lastName = lastName;
  const e = rand();
  if (e >= 0.08) {
    const first = asciiLocal(firstName) || 'user';
    const last = asciiLocal(lastName) || 'x';
    let email = `${first}.${last}${i}@${pick(rand, DOMAINS)}`.toLowerCase();
    if (rand() < 0.15) email = `${first}.${last}${i}@${pick(rand, DOMAINS).toUpperCase()}`;
    user.email = email;
  }
  return user;
}

/** Users 1..count for a seed. */
export function syntheticUsers(seed: number, count: number): UserRecord[] {
  const users: UserRecord[] = new Array(count);
  for (let i = 1; i <= count; i++) users[i - 1] = syntheticUser(seed, i);
  return users;
}
