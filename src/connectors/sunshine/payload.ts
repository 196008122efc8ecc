import type { FieldMap, FieldValue } from '../../core/types.js';

/**
 * Sunshine FieldMaps use three kinds of dotted names (src/connectors/types.ts):
 * `name`, `identifiers.<type>` (one value per type) and `attributes.<key>`. This file turns them into the
 * Profiles API's JSON (seed 003, "JSON format") and back, and builds the merge a PUT needs (seed 001).
 */

export const NAME = 'name';
export const IDENTIFIER_PREFIX = 'identifiers.';
export const ATTRIBUTE_PREFIX = 'attributes.';

export interface SunshineIdentifier {
  type: string;
  value: string | number;
}

/** A profile as the API returns it (only what profile-sync reads). */
export interface SunshineProfile {
  id?: string;
  name?: string | null;
  source?: string;
  type?: string;
  identifiers?: SunshineIdentifier[];
  attributes?: Record<string, unknown>;
}

/** The request body of a PUT or PATCH: `{"profile": {...}}`; source and type come from the identifier query. */
export interface ProfileBody {
  profile: {
    name?: string;
    identifiers?: SunshineIdentifier[];
    attributes?: Record<string, unknown>;
  };
}

export type FieldKind =
  | { kind: 'name' }
  | { kind: 'identifier'; type: string }
  | { kind: 'attribute'; key: string };

/** What a FieldMap name addresses. Unknown names are a mapping bug, caught at config load (mapping.ts). */
export function fieldKind(field: string): FieldKind {
  if (field === NAME) return { kind: 'name' };
  if (field.startsWith(IDENTIFIER_PREFIX))
    return { kind: 'identifier', type: field.slice(IDENTIFIER_PREFIX.length) };
  if (field.startsWith(ATTRIBUTE_PREFIX))
    return { kind: 'attribute', key: field.slice(ATTRIBUTE_PREFIX.length) };
  throw new Error(`sunshine: field '${field}' is not name, identifiers.<type> or attributes.<key>`);
}

/** The profile body a create PUT sends: everything in `next`. `attributes` is mandatory (seed 003), so `{}` at least. */
export function profileBody(next: FieldMap): ProfileBody {
  const profile: ProfileBody['profile'] = {};
  const identifiers: SunshineIdentifier[] = [];
  const attributes: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(next)) {
    const k = fieldKind(field);
    if (k.kind === 'name') profile.name = String(value);
    else if (k.kind === 'identifier') identifiers.push({ type: k.type, value: String(value) });
    else attributes[k.key] = value;
  }
  profile.identifiers = identifiers;
  profile.attributes = attributes;
  return { profile };
}

/**
 * A PATCH body carrying only the changed `name` / `attributes.*` fields (seed 001: PATCH merges
 * attributes key by key and updates name). Never identifiers: a PATCH adds an identifier rather than
 * replacing one (seed 001, "Updating identifiers"), so identifier changes go through PUT.
 */
export function patchBody(changed: FieldMap): ProfileBody {
  const profile: ProfileBody['profile'] = {};
  for (const [field, value] of Object.entries(changed)) {
    const k = fieldKind(field);
    if (k.kind === 'name') profile.name = String(value);
    else if (k.kind === 'attribute') {
      profile.attributes ??= {};
      profile.attributes[k.key] = value;
    } else throw new Error(`sunshine: identifier field '${field}' cannot be patched (seed 001)`);
  }
  return { profile };
}

/**
 * The PUT body that replaces `current` so that it holds `next` for every managed field while everything
 * profile-sync does not manage survives (seed 001, "Replacing a profile": "any data not included in the
 * new version is lost. You can make a preliminary GET request to get the existing profile and merge the
 * data into the new one"):
 * - identifiers: every identifier whose type is managed is dropped, then next's are added, so an old
 *   email disappears; foreign types (phone_number, member ids, ...) keep their place and value;
 * - attributes: managed keys dropped, next's set; foreign keys kept;
 * - name: next's when it has one; when `name` is managed and next has none it is left out so Zendesk
 *   derives it (seed 003 name table); an unmanaged name is kept.
 */
export function mergeForPut(
  current: SunshineProfile,
  managed: Iterable<string>,
  next: FieldMap,
): ProfileBody {
  const managedTypes = new Set<string>();
  const managedKeys = new Set<string>();
  let nameManaged = false;
  for (const field of managed) {
    const k = fieldKind(field);
    if (k.kind === 'name') nameManaged = true;
    else if (k.kind === 'identifier') managedTypes.add(k.type);
    else managedKeys.add(k.key);
  }
  const wanted = profileBody(next).profile;
  const identifiers = [
    ...(current.identifiers ?? []).filter((i) => !managedTypes.has(i.type)),
    ...(wanted.identifiers ?? []),
  ];
  const attributes: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(current.attributes ?? {})) if (!managedKeys.has(k)) attributes[k] = v;
  Object.assign(attributes, wanted.attributes);
  const profile: ProfileBody['profile'] = {};
  if (wanted.name !== undefined) profile.name = wanted.name;
  else if (!nameManaged && typeof current.name === 'string') profile.name = current.name;
  profile.identifiers = identifiers;
  profile.attributes = attributes;
  return { profile };
}

/**
 * A profile without any managed field (privacy removal, seed 001 "Complying with privacy and data
 * protection laws": replace the profile with a version that does not include the identifier).
 */
export function stripManaged(current: SunshineProfile, managed: Iterable<string>): ProfileBody {
  return mergeForPut(current, managed, {});
}

/**
 * The name Zendesk derives when a profile has none (seed 003, name table): email address, else
 * "User " + external id, phone number, ..., else "{type} user {value}" of the first identifier.
 */
export function derivedName(identifiers: readonly SunshineIdentifier[]): string | undefined {
  const find = (t: string) => identifiers.find((i) => i.type === t)?.value;
  const rules: [string, (v: string) => string][] = [
    ['email', (v) => v],
    ['external_id', (v) => `User ${v}`],
    ['phone_number', (v) => `User ${v}`],
    ['twitter', (v) => `Twitter user ${v}`],
    ['facebook', (v) => `Facebook user ${v}`],
    ['sdk', (v) => `SDK user ${v}`],
  ];
  for (const [type, name] of rules) {
    const v = find(type);
    if (v !== undefined) return name(String(v));
  }
  const first = identifiers[0];
  return first ? `${first.type} user ${first.value}` : undefined;
}

/**
 * The managed fields a profile holds, as a FieldMap (`read()`). Only names in `fields`. A managed
 * identifier type that appears twice (a PATCH elsewhere added one, seed 001) reads as its first value.
 * A name equal to what Zendesk would derive reads as absent when the mapping produced none, so a user
 * without a name does not look drifted on every `--full` run.
 */
export function fieldsFromProfile(profile: SunshineProfile, fields: readonly string[]): FieldMap {
  const out: FieldMap = {};
  const identifiers = profile.identifiers ?? [];
  for (const field of fields) {
    const k = fieldKind(field);
    if (k.kind === 'name') {
      const name = profile.name;
      if (typeof name === 'string' && name !== '' && name !== derivedName(identifiers)) out[field] = name;
    } else if (k.kind === 'identifier') {
      const found = identifiers.find((i) => i.type === k.type);
      if (found !== undefined) out[field] = String(found.value);
    } else {
      const v = profile.attributes?.[k.key];
      if (isFieldValue(v)) out[field] = v;
    }
  }
  return out;
}

function isFieldValue(v: unknown): v is FieldValue {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

/** True when a profile holds identifiers or attributes outside `managed`: remove() then strips instead of deleting. */
export function hasForeignData(profile: SunshineProfile, managed: Iterable<string>): boolean {
  const stripped = stripManaged(profile, managed).profile;
  return (stripped.identifiers?.length ?? 0) > 0 || Object.keys(stripped.attributes ?? {}).length > 0;
}

/** Compares two bodies for "would this PUT change anything": identifiers as a set, attributes by key. */
export function sameContent(current: SunshineProfile, body: ProfileBody): boolean {
  const a = body.profile;
  if (a.name !== undefined) {
    if (a.name !== current.name) return false;
  } else if (current.name && current.name !== derivedName(a.identifiers ?? [])) {
    // The PUT would let Zendesk derive the name: the same only if the current name is that derivation.
    return false;
  }
  const norm = (ids: readonly SunshineIdentifier[] = []) =>
    ids
      .map((i) => `${i.type}\u0000${String(i.value)}`)
      .sort()
      .join('\u0001');
  if (norm(a.identifiers) !== norm(current.identifiers)) return false;
  const ca = current.attributes ?? {};
  const ba = a.attributes ?? {};
  if (Object.keys(ca).length !== Object.keys(ba).length) return false;
  return Object.entries(ba).every(([k, v]) => JSON.stringify(ca[k]) === JSON.stringify(v));
}
