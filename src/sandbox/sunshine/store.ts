import { SunshineError } from './errors.js';
import type { IdentifierQuery } from './identifier-query.js';
import {
  dedupeIdentifiers,
  type Identifier,
  identifierKey,
  isStandardIdentifierType,
  normalizeIdentifierValue,
} from './identifiers.js';
import { mergePatch } from './merge-patch.js';
import type { ProfileInput } from './profile-body.js';
import { deriveProfileName } from './profile-name.js';
import { createIdGenerator } from './ulid.js';

/** A profile as Zendesk stores and returns it (003, "JSON format"). */
export interface SunshineProfile {
  id: string;
  name: string;
  source: string;
  type: string;
  identifiers: Identifier[];
  attributes: Record<string, unknown>;
  user_id: string;
  created_at: string;
  updated_at: string;
}

/** The part of a Zendesk Support user the Profiles API touches (003, "Standard identifiers"). */
export interface ZendeskUser {
  id: string;
  name: string;
  /** True for the anonymous users the API creates when no identity matched. */
  anonymous: boolean;
  external_id: string | null;
  /** Identities (email, phone_number, twitter, facebook, sdk, google). */
  identities: Identifier[];
  created_at: string;
}

export interface SunshineStoreOptions {
  /** Most identifiers on one profile (Zendesk's documented limit). @defaultValue 20 */
  maxIdentifiers?: number;
  /** Longest profile `source` or `type` (Zendesk's documented limit). @defaultValue 40 */
  maxSourceTypeLength?: number;
  /**
   * Most profiles per Zendesk user. 003: "When creating a new profile for a user exceeds the maximum
   * number of profiles, the request will fail" without saying the number; Zendesk's limits page says
   * 20 (../shared/seeds/vendor-facts.md, "Zendesk Sunshine profiles"). @defaultValue 20
   */
  maxProfilesPerUser?: number;
  /** Seed of the profile ids. @defaultValue 1 */
  seed?: number;
  /** Clock (tests pin it). @defaultValue Date.now */
  now?: () => number;
}

/** Identity types a Zendesk user can hold; `google` identities match `email` identifiers (003). */
const IDENTITY_TYPES = new Set(['email', 'phone_number', 'twitter', 'facebook', 'sdk', 'google']);
const FIRST_USER_ID = 10_000_000_001;

/**
 * The Sunshine profile store and its Zendesk users, with the rules of 003 and 001. Every failing rule
 * throws a SunshineError; nothing is changed before all of an operation's checks have passed.
 */
export class SunshineStore {
  readonly maxIdentifiers: number;
  readonly maxSourceTypeLength: number;
  readonly maxProfilesPerUser: number;
  private readonly seed: number;
  private readonly now: () => number;
  private nextProfileId!: () => string;
  private nextUserId = FIRST_USER_ID;
  private profiles = new Map<string, SunshineProfile>();
  /** source, type, identifier type, normalised value -> profile id. */
  private profileIndex = new Map<string, string>();
  private users = new Map<string, ZendeskUser>();
  private profilesByUser = new Map<string, Set<string>>();
  /** identity type (google as email), value -> user id. */
  private identityIndex = new Map<string, string>();
  private externalIdIndex = new Map<string, string>();
  private lastStampMs = Number.NaN;
  private lastStamp = '';

  constructor(options: SunshineStoreOptions = {}) {
    this.maxIdentifiers = options.maxIdentifiers ?? 20;
    this.maxSourceTypeLength = options.maxSourceTypeLength ?? 40;
    this.maxProfilesPerUser = options.maxProfilesPerUser ?? 20;
    this.seed = options.seed ?? 1;
    this.now = options.now ?? Date.now;
    this.reset();
  }

  /** Forgets every profile and user. */
  reset(): void {
    this.nextProfileId = createIdGenerator(this.seed, this.now);
    this.nextUserId = FIRST_USER_ID;
    this.profiles.clear();
    this.profileIndex.clear();
    this.users.clear();
    this.profilesByUser.clear();
    this.identityIndex.clear();
    this.externalIdIndex.clear();
  }

  get(profileId: string): SunshineProfile | undefined {
    const profile = this.profiles.get(profileId);
    return profile && view(profile);
  }

  /** The profile an identifier query names, matching email/twitter values case-insensitively. */
  findByQuery(query: IdentifierQuery): SunshineProfile | undefined {
    const id = this.profileIndex.get(
      profileKey(query.source, query.type, { type: query.identifierType, value: query.identifierValue }),
    );
    return id === undefined ? undefined : this.get(id);
  }

  /** GET /api/v2/users/{user_id}/profiles: 404 for an unknown user. */
  profilesOfUser(userId: string): SunshineProfile[] {
    const ids = this.profilesByUser.get(userId);
    if (!this.users.has(userId) || !ids) throw new SunshineError(404, 'User not found');
    return [...ids].map((id) => view(this.profiles.get(id)!));
  }

  /**
   * PUT by identifier query (optionally under /users/{user_id}): creates the profile when the query
   * matches none (source and type from the query), else replaces its content (001, "Replacing a profile").
   */
  putByQuery(
    query: IdentifierQuery,
    input: ProfileInput,
    userId?: string,
  ): { profile: SunshineProfile; created: boolean } {
    if (userId !== undefined && !this.users.has(userId)) throw new SunshineError(404, 'User not found');
    this.checkSourceAndType(query.source, query.type);
    const existingId = this.profileIndex.get(
      profileKey(query.source, query.type, { type: query.identifierType, value: query.identifierValue }),
    );
    if (existingId !== undefined) {
      const existing = this.profiles.get(existingId)!;
      if (userId !== undefined && existing.user_id !== userId) {
        throw new SunshineError(400, 'The profile belongs to another user');
      }
      return { profile: this.replace(existing, input), created: false };
    }
    return { profile: this.create(query, input, userId), created: true };
  }

  /** PUT /api/v2/user_profiles/{profile_id}: replaces; 003 lists no 201 here, so an absent id is 404. */
  replaceById(profileId: string, input: ProfileInput): SunshineProfile {
    const existing = this.profiles.get(profileId);
    if (!existing) throw new SunshineError(404, 'Profile not found');
    return this.replace(existing, input);
  }

  /** PATCH by id (001, "Patching a profile"): 404 when absent. */
  patchById(profileId: string, input: ProfileInput): SunshineProfile {
    const existing = this.profiles.get(profileId);
    if (!existing) throw new SunshineError(404, 'Profile not found');
    return this.patch(existing, input);
  }

  /** PATCH by identifier query: 404 when no profile matches (001). */
  patchByQuery(query: IdentifierQuery, input: ProfileInput): SunshineProfile {
    const id = this.profileIndex.get(
      profileKey(query.source, query.type, { type: query.identifierType, value: query.identifierValue }),
    );
    if (id === undefined) throw new SunshineError(404, 'Profile not found');
    return this.patch(this.profiles.get(id)!, input);
  }

  /** DELETE by id; the Zendesk user and its identities stay. False when absent. */
  delete(profileId: string): boolean {
    const profile = this.profiles.get(profileId);
    if (!profile) return false;
    this.unindex(profile);
    this.profiles.delete(profileId);
    this.profilesByUser.get(profile.user_id)?.delete(profileId);
    return true;
  }

  // ---- inspection ----------------------------------------------------------------------------------

  listProfiles(): SunshineProfile[] {
    return [...this.profiles.values()].map(view);
  }

  listUsers(): ZendeskUser[] {
    return [...this.users.values()].map(viewUser);
  }

  getUser(userId: string): ZendeskUser | undefined {
    const user = this.users.get(userId);
    return user && viewUser(user);
  }

  /**
   * Adds a Zendesk user as if created in Support (inspection API), so tests can prove profiles link to
   * an existing user by identity. 400 when an identity or external_id is already taken.
   */
  addUser(input: { name?: string; external_id?: string; identities?: Identifier[] }): ZendeskUser {
    const identities = dedupeIdentifiers(input.identities ?? []);
    for (const identity of identities) {
      if (!IDENTITY_TYPES.has(identity.type)) {
        throw new SunshineError(400, `Unknown identity type ${identity.type}`);
      }
      if (this.identityIndex.has(identityKey(identity))) throw new SunshineError(400, 'Identity taken');
    }
    if (input.external_id !== undefined && this.externalIdIndex.has(input.external_id)) {
      throw new SunshineError(400, 'external_id taken');
    }
    const user = this.newUser(input.name ?? identities[0]?.value ?? 'Anonymous user', false);
    if (input.external_id !== undefined) this.setExternalId(user, input.external_id);
    for (const identity of identities) this.addIdentity(user, identity);
    return viewUser(user);
  }

  /**
   * Edits a stored profile directly, as someone working in Zendesk outside profile-sync would: merges
   * `attributes` (null removes a key), appends `identifiers`, sets `name`. No rules are applied.
   */
  rawEdit(
    profileId: string,
    edit: { name?: string; attributes?: Record<string, unknown>; identifiers?: Identifier[] },
  ): SunshineProfile | undefined {
    const profile = this.profiles.get(profileId);
    if (!profile) return undefined;
    this.unindex(profile);
    if (edit.name !== undefined) profile.name = edit.name;
    if (edit.attributes) profile.attributes = mergePatch(profile.attributes, edit.attributes);
    if (edit.identifiers)
      profile.identifiers = dedupeIdentifiers([...profile.identifiers, ...edit.identifiers]);
    profile.updated_at = this.timestamp();
    this.index(profile);
    return view(profile);
  }

  // ---- rules ---------------------------------------------------------------------------------------

  private create(query: IdentifierQuery, input: ProfileInput, pathUserId?: string): SunshineProfile {
    // 003: "Note that the source 'zendesk' is reserved and cannot be used to create a profile."
    if (query.source.toLowerCase() === 'zendesk') {
      throw new SunshineError(400, "The source 'zendesk' is reserved");
    }
    // The query's identifier is how the caller will find this profile again: it is added when the body
    // lacks it (docs/sandbox-sunshine-prelude.md).
    const identifiers = dedupeIdentifiers([
      ...(input.identifiers ?? []),
      { type: query.identifierType, value: query.identifierValue },
    ]);
    this.checkIdentifiers(query.source, query.type, identifiers, undefined);
    const matched = this.matchUsers(identifiers);
    let user: ZendeskUser | undefined;
    if (pathUserId !== undefined) {
      for (const id of matched) {
        if (id !== pathUserId) throw new SunshineError(400, 'The identifiers belong to another user');
      }
      user = this.users.get(pathUserId)!;
    } else {
      if (matched.size > 1) throw new SunshineError(400, 'The identifiers belong to more than one user');
      const [only] = matched;
      user = only === undefined ? undefined : this.users.get(only);
    }
    if (user && (this.profilesByUser.get(user.id)?.size ?? 0) >= this.maxProfilesPerUser) {
      throw new SunshineError(400, 'The user has the maximum number of profiles');
    }
    const name = input.name ?? deriveProfileName(identifiers)!;
    // "If no match is found, it creates an anonymous Zendesk user" (003).
    user ??= this.newUser(name, true);
    const at = this.timestamp();
    const profile: SunshineProfile = {
      id: this.nextProfileId(),
      name,
      source: query.source,
      type: query.type,
      identifiers,
      attributes: input.attributes ?? {},
      user_id: user.id,
      created_at: at,
      updated_at: at,
    };
    this.profiles.set(profile.id, profile);
    this.profilesByUser.get(user.id)!.add(profile.id);
    this.index(profile);
    this.attachIdentities(user, identifiers);
    return view(profile);
  }

  /** PUT semantics (001): content replaced; id, created_at, source, type and user_id kept. */
  private replace(existing: SunshineProfile, input: ProfileInput): SunshineProfile {
    const identifiers = dedupeIdentifiers(input.identifiers ?? []);
    if (identifiers.length === 0) throw new SunshineError(400, 'A profile needs at least one identifier');
    this.checkIdentifiers(existing.source, existing.type, identifiers, existing);
    this.checkSameUser(identifiers, existing.user_id);
    this.unindex(existing);
    existing.identifiers = identifiers;
    existing.attributes = input.attributes ?? {};
    existing.name = input.name ?? deriveProfileName(identifiers)!;
    existing.updated_at = this.timestamp();
    this.index(existing);
    this.attachIdentities(this.users.get(existing.user_id)!, identifiers);
    return view(existing);
  }

  /**
   * PATCH semantics (001): attributes merged, name replaced when given, identifiers only ever added
   * ("Attempting to update one ... adds a new identifier"), source/type/user_id ignored.
   */
  private patch(existing: SunshineProfile, input: ProfileInput): SunshineProfile {
    const have = new Set(existing.identifiers.map(identifierKey));
    const added = dedupeIdentifiers(input.identifiers ?? []).filter((i) => !have.has(identifierKey(i)));
    const identifiers = [...existing.identifiers, ...added];
    this.checkIdentifiers(existing.source, existing.type, identifiers, existing);
    this.checkSameUser(added, existing.user_id);
    this.unindex(existing);
    existing.identifiers = identifiers;
    if (input.attributes) existing.attributes = mergePatch(existing.attributes, input.attributes);
    if (input.name !== undefined) existing.name = input.name;
    existing.updated_at = this.timestamp();
    this.index(existing);
    this.attachIdentities(this.users.get(existing.user_id)!, added);
    return view(existing);
  }

  private checkSourceAndType(source: string, type: string): void {
    if (source.length > this.maxSourceTypeLength) {
      throw new SunshineError(400, `source is longer than ${this.maxSourceTypeLength} characters`);
    }
    if (type.length > this.maxSourceTypeLength) {
      throw new SunshineError(400, `type is longer than ${this.maxSourceTypeLength} characters`);
    }
  }

  /**
   * The identifier limit, and 003's "all the identifiers should belong to a single user and a single
   * profile": an identifier already on another profile of the same source and type is a 400.
   */
  private checkIdentifiers(
    source: string,
    type: string,
    identifiers: readonly Identifier[],
    self: SunshineProfile | undefined,
  ): void {
    if (identifiers.length > this.maxIdentifiers) {
      throw new SunshineError(400, `A profile can have at most ${this.maxIdentifiers} identifiers`);
    }
    for (const identifier of identifiers) {
      const owner = this.profileIndex.get(profileKey(source, type, identifier));
      if (owner !== undefined && owner !== self?.id) {
        throw new SunshineError(400, `The identifier ${identifier.type} belongs to another profile`);
      }
    }
  }

  /** "When identifiers for multiple users are provided, the request will fail." (003) */
  private checkSameUser(identifiers: readonly Identifier[], userId: string): void {
    for (const id of this.matchUsers(identifiers)) {
      if (id !== userId) throw new SunshineError(400, 'The identifiers belong to more than one user');
    }
  }

  /** Users whose identity (or external_id) matches a standard identifier (003). */
  private matchUsers(identifiers: readonly Identifier[]): Set<string> {
    const matched = new Set<string>();
    for (const identifier of identifiers) {
      let userId: string | undefined;
      if (identifier.type === 'external_id') userId = this.externalIdIndex.get(identifier.value);
      else if (isStandardIdentifierType(identifier.type))
        userId = this.identityIndex.get(identityKey(identifier));
      if (userId !== undefined) matched.add(userId);
    }
    return matched;
  }

  /**
   * "Any email, phone, Facebook, SDK or X identifier added to a profile is automatically added as an
   * identity to the user in Zendesk Support. Any external ID identifier added to a profile is
   * automatically added as the external_id attribute on the Zendesk user." (003)
   */
  private attachIdentities(user: ZendeskUser, identifiers: readonly Identifier[]): void {
    for (const identifier of identifiers) {
      if (identifier.type === 'external_id') this.setExternalId(user, identifier.value);
      else if (
        isStandardIdentifierType(identifier.type) &&
        !this.identityIndex.has(identityKey(identifier))
      ) {
        this.addIdentity(user, identifier);
      }
    }
  }

  private setExternalId(user: ZendeskUser, externalId: string): void {
    if (user.external_id !== null) this.externalIdIndex.delete(user.external_id);
    user.external_id = externalId;
    this.externalIdIndex.set(externalId, user.id);
  }

  private addIdentity(user: ZendeskUser, identity: Identifier): void {
    user.identities.push(identity);
    this.identityIndex.set(identityKey(identity), user.id);
  }

  private newUser(name: string, anonymous: boolean): ZendeskUser {
    const user: ZendeskUser = {
      id: String(this.nextUserId++),
      name,
      anonymous,
      external_id: null,
      identities: [],
      created_at: this.timestamp(),
    };
    this.users.set(user.id, user);
    this.profilesByUser.set(user.id, new Set());
    return user;
  }

  private index(profile: SunshineProfile): void {
    for (const identifier of profile.identifiers) {
      this.profileIndex.set(profileKey(profile.source, profile.type, identifier), profile.id);
    }
  }

  private unindex(profile: SunshineProfile): void {
    for (const identifier of profile.identifiers) {
      const key = profileKey(profile.source, profile.type, identifier);
      if (this.profileIndex.get(key) === profile.id) this.profileIndex.delete(key);
    }
  }

  private timestamp(): string {
    // Formatting a Date is a measurable share of a PUT; at thousands of requests a second most share a ms.
    const now = this.now();
    if (now !== this.lastStampMs) {
      this.lastStampMs = now;
      this.lastStamp = new Date(now).toISOString();
    }
    return this.lastStamp;
  }
}

function profileKey(source: string, type: string, identifier: Identifier): string {
  return `${source}\u0000${type}\u0000${identifierKey(identifier)}`;
}

function identityKey(identity: Identifier): string {
  const type = identity.type === 'google' ? 'email' : identity.type;
  return `${type}\u0000${normalizeIdentifierValue(type, identity.value)}`;
}

/** The JSON of a profile, in 003's key order, sharing nothing mutable with the store. */
function view(p: SunshineProfile): SunshineProfile {
  return {
    id: p.id,
    name: p.name,
    source: p.source,
    type: p.type,
    identifiers: p.identifiers.map((i) => ({ type: i.type, value: i.value })),
    attributes: p.attributes,
    user_id: p.user_id,
    created_at: p.created_at,
    updated_at: p.updated_at,
  };
}

function viewUser(u: ZendeskUser): ZendeskUser {
  return { ...u, identities: u.identities.map((i) => ({ type: i.type, value: i.value })) };
}
