import { IDENTIFIER_TYPES, type IdentifierType } from './directory.js';
import { isReservedProfileKey } from './reserved-keys.js';

/** Entries allowed in each list of a batch lookup (prelude-users-api.md). */
export const BATCH_LOOKUP_MAX = 100;
/** Longest external_id (prelude-users-api.md). */
export const EXTERNAL_ID_MAX = 128;

type Refused = { ok: false; code: 'invalid_request' | 'reserved_profile_key'; message: string };

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** `{"external_ids": [...], "emails": [...]}`: at least one non-empty list, each at most 100 strings. */
export function checkBatchLookup(
  body: unknown,
): { ok: true; externalIds: string[]; emails: string[] } | Refused {
  if (!isObject(body)) return refuse('the body must be a JSON object');
  const lists: Record<'external_ids' | 'emails', string[]> = { external_ids: [], emails: [] };
  for (const name of ['external_ids', 'emails'] as const) {
    const value = body[name];
    if (value === undefined || value === null) continue;
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
      return refuse(`${name} must be an array of strings`);
    }
    if (value.length > BATCH_LOOKUP_MAX) {
      return refuse(`${name} has ${value.length} entries; at most ${BATCH_LOOKUP_MAX} are allowed`);
    }
    lists[name] = value as string[];
  }
  if (lists.external_ids.length === 0 && lists.emails.length === 0) {
    return refuse('at least one of external_ids and emails must hold an entry');
  }
  return { ok: true, externalIds: lists.external_ids, emails: lists.emails };
}

function checkProfile(profile: unknown): Refused | undefined {
  if (!isObject(profile) || Object.values(profile).some((v) => typeof v !== 'string')) {
    return refuse('profile must be an object of strings');
  }
  const reserved = Object.keys(profile).find(isReservedProfileKey);
  if (reserved !== undefined) {
    return {
      ok: false,
      code: 'reserved_profile_key',
      message: 'The profile key is reserved and cannot be used.',
    };
  }
  return undefined;
}

function checkExternalId(value: unknown): Refused | undefined {
  if (typeof value !== 'string' || value === '' || value.length > EXTERNAL_ID_MAX) {
    return refuse(`external_id must be a string of 1 to ${EXTERNAL_ID_MAX} characters`);
  }
  return undefined;
}

/** `POST .../users`: identifiers required (phone_number or email_address), optional profile and external_id. */
export function checkCreateUser(body: unknown):
  | {
      ok: true;
      identifiers: { type: IdentifierType; value: string }[];
      profile: Record<string, string>;
      externalId?: string;
    }
  | Refused {
  if (!isObject(body)) return refuse('the body must be a JSON object');
  const ids = body.identifiers;
  if (!Array.isArray(ids) || ids.length === 0) return refuse('identifiers is required and must not be empty');
  const identifiers: { type: IdentifierType; value: string }[] = [];
  for (const i of ids) {
    if (
      !isObject(i) ||
      !IDENTIFIER_TYPES.includes(i.type as IdentifierType) ||
      typeof i.value !== 'string' ||
      i.value.trim() === ''
    ) {
      return refuse('each identifier must be {"type": "phone_number" | "email_address", "value": string}');
    }
    identifiers.push({ type: i.type as IdentifierType, value: i.value });
  }
  const profile = body.profile ?? {};
  const badProfile = checkProfile(profile);
  if (badProfile) return badProfile;
  if (body.external_id !== undefined && body.external_id !== null) {
    const bad = checkExternalId(body.external_id);
    if (bad) return bad;
    return {
      ok: true,
      identifiers,
      profile: profile as Record<string, string>,
      externalId: body.external_id as string,
    };
  }
  return { ok: true, identifiers, profile: profile as Record<string, string> };
}

/** `PUT .../users/{userID}/external_id` body `{"external_id": "..."}`. */
export function checkPutExternalId(body: unknown): { ok: true; externalId: string } | Refused {
  if (!isObject(body)) return refuse('the body must be a JSON object');
  const bad = checkExternalId(body.external_id);
  if (bad) return bad;
  return { ok: true, externalId: body.external_id as string };
}

function refuse(message: string): Refused {
  return { ok: false, code: 'invalid_request', message };
}
