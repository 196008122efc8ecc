import { hash32, hashUnit } from '../kit/index.js';
import { seededCreatedAt, usrId } from './usr-ids.js';

/** An identifier of a Prelude user (prelude-users-api.md: `phone_number` or `email_address`). */
export type IdentifierType = 'phone_number' | 'email_address';
export const IDENTIFIER_TYPES: readonly IdentifierType[] = ['phone_number', 'email_address'];

export interface PreludeUser {
  id: string;
  status: 'active';
  identifiers: { type: IdentifierType; value: string }[];
  external_id?: string;
  scopes: string[];
  profile: Record<string, string>;
  created_at: string;
  updated_at: string;
}

/** A source user as the Prelude directory is seeded from it. */
export interface PopulationUser {
  id: string;
  email?: string | null;
}

/** How a source user appears in Prelude, by the hash of (seed, id) (docs/sandbox-sunshine-prelude.md). */
export type SeededKind = 'unknown' | 'email_only' | 'external_id';

/**
 * The band a source id falls in: `[0, unknownShare)` unknown to Prelude (the same ids the legacy rule
 * refuses), then `emailOnlyShare` known only by email (no external_id; unknown when the user has no
 * email), the rest known by `external_id` = the source id.
 */
export function seededKind(
  seed: number,
  userId: string,
  unknownShare: number,
  emailOnlyShare: number,
  hasEmail: boolean,
): SeededKind {
  const h = hashUnit(seed, userId);
  if (h < unknownShare) return 'unknown';
  if (h < unknownShare + emailOnlyShare) return hasEmail ? 'email_only' : 'unknown';
  return 'external_id';
}

/** Emails compare case-insensitively; stored lowercased (our choice: the facts file is silent). */
export const normalizeEmail = (email: string): string => email.trim().toLowerCase();

const key = (type: IdentifierType, value: string): string =>
  `${type}:${type === 'email_address' ? normalizeEmail(value) : value}`;

export interface DirectoryOptions {
  seed: number;
  appId: string;
  unknownShare: number;
  emailOnlyShare: number;
  now: () => number;
}

/** One app's Prelude users, indexed by usr id, external_id and identifier. */
export class PreludeDirectory {
  private readonly byId = new Map<string, PreludeUser>();
  private readonly byExternal = new Map<string, PreludeUser>();
  private readonly byIdentifier = new Map<string, PreludeUser>();
  private created = 0;

  constructor(
    private readonly options: DirectoryOptions,
    population: Iterable<PopulationUser> = [],
  ) {
    for (const u of population) {
      const email = typeof u.email === 'string' && u.email.trim() !== '' ? u.email : undefined;
      const kind = seededKind(
        options.seed,
        u.id,
        options.unknownShare,
        options.emailOnlyShare,
        email !== undefined,
      );
      if (kind === 'unknown') continue;
      const identifiers: PreludeUser['identifiers'] = email
        ? [{ type: 'email_address', value: normalizeEmail(email) }]
        : [{ type: 'phone_number', value: syntheticPhone(options.seed, u.id) }];
      if (identifiers.some((i) => this.byIdentifier.has(key(i.type, i.value)))) continue;
      const at = seededCreatedAt(options.seed, `${options.appId}\n${u.id}`);
      this.insert({
        id: this.freshId(`seeded\n${options.appId}\n${u.id}`, at),
        status: 'active',
        identifiers,
        ...(kind === 'external_id' && u.id.length <= 128 ? { external_id: u.id } : {}),
        scopes: [],
        profile: {},
        created_at: new Date(at).toISOString(),
        updated_at: new Date(at).toISOString(),
      });
    }
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: string): PreludeUser | undefined {
    return this.byId.get(id);
  }

  byExternalId(externalId: string): PreludeUser | undefined {
    return this.byExternal.get(externalId);
  }

  byIdentifierValue(type: IdentifierType, value: string): PreludeUser | undefined {
    return this.byIdentifier.get(key(type, value));
  }

  list(): PreludeUser[] {
    return [...this.byId.values()];
  }

  /** Which of these would clash with another user: an identifier or the external_id already held. */
  conflict(
    identifiers: { type: IdentifierType; value: string }[],
    externalId: string | undefined,
    self?: string,
  ): string | undefined {
    for (const i of identifiers) {
      const other = this.byIdentifier.get(key(i.type, i.value));
      if (other && other.id !== self) return `${i.type} ${i.value} belongs to another user`;
    }
    if (externalId !== undefined) {
      const other = this.byExternal.get(externalId);
      if (other && other.id !== self) return `external_id ${externalId} belongs to another user`;
    }
    return undefined;
  }

  /** Creates a user (the caller checked `conflict` first). Ids follow the seed and the creation order. */
  create(input: {
    identifiers: { type: IdentifierType; value: string }[];
    externalId?: string;
    profile?: Record<string, string>;
  }): PreludeUser {
    const at = this.options.now();
    const stamp = new Date(at).toISOString();
    const user: PreludeUser = {
      id: this.freshId(`created\n${this.options.appId}\n${++this.created}`, at),
      status: 'active',
      identifiers: input.identifiers.map((i) => ({
        type: i.type,
        value: i.type === 'email_address' ? normalizeEmail(i.value) : i.value,
      })),
      ...(input.externalId !== undefined ? { external_id: input.externalId } : {}),
      scopes: [],
      profile: { ...input.profile },
      created_at: stamp,
      updated_at: stamp,
    };
    this.insert(user);
    return user;
  }

  setExternalId(id: string, externalId: string): void {
    const user = this.byId.get(id);
    if (!user) return;
    if (user.external_id !== undefined) this.byExternal.delete(user.external_id);
    user.external_id = externalId;
    this.byExternal.set(externalId, user);
    user.updated_at = new Date(this.options.now()).toISOString();
  }

  patchProfile(id: string, patch: Record<string, string>): void {
    const user = this.byId.get(id);
    if (!user) return;
    user.profile = { ...user.profile, ...patch };
    user.updated_at = new Date(this.options.now()).toISOString();
  }

  remove(id: string): boolean {
    const user = this.byId.get(id);
    if (!user) return false;
    this.byId.delete(id);
    if (user.external_id !== undefined) this.byExternal.delete(user.external_id);
    for (const i of user.identifiers) this.byIdentifier.delete(key(i.type, i.value));
    return true;
  }

  private insert(user: PreludeUser): void {
    this.byId.set(user.id, user);
    if (user.external_id !== undefined) this.byExternal.set(user.external_id, user);
    for (const i of user.identifiers) this.byIdentifier.set(key(i.type, i.value), user);
  }

  /** A usr id not yet used (a clash of 80 hashed bits is rehashed with a salt, deterministically). */
  private freshId(idKey: string, at: number): string {
    let id = usrId(this.options.seed, idKey, at);
    for (let salt = 1; this.byId.has(id); salt++) id = usrId(this.options.seed, `${idKey}\n${salt}`, at);
    return id;
  }
}

/** A deterministic French mobile number in E.164 for a seeded user without an email. */
function syntheticPhone(seed: number, userId: string): string {
  return `+336${String(hash32(seed, `phone:${userId}`) % 100_000_000).padStart(8, '0')}`;
}
