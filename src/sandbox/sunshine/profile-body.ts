import { SunshineError } from './errors.js';
import type { Identifier } from './identifiers.js';

/** The editable part of a profile as sent in a PUT or PATCH body. */
export interface ProfileInput {
  name?: string;
  attributes?: Record<string, unknown>;
  identifiers?: Identifier[];
}

/**
 * Validates `{"profile": {...}}`. 003's JSON format table marks `attributes` and `identifiers` mandatory:
 * a PUT (create or replace) without either, or with the wrong type, is a 400. A PATCH may omit both
 * (001's example sends only name and attributes) but must give them the right type when present.
 * Read-only and ignored fields (`id`, `source`, `type`, `user_id`, timestamps) are not checked: 001 says
 * PATCH ignores them, and PUT takes source/type from the identifier query or keeps the stored ones.
 */
export function parseProfileBody(body: unknown, mode: 'put' | 'patch'): ProfileInput {
  if (!isObject(body)) throw new SunshineError(400, 'The request body must be a JSON object');
  const profile = body.profile;
  if (!isObject(profile)) throw new SunshineError(400, 'profile must be an object');
  const input: ProfileInput = {};

  if (profile.name !== undefined && profile.name !== null) {
    if (typeof profile.name !== 'string') throw new SunshineError(400, 'profile.name must be a string');
    if (profile.name !== '') input.name = profile.name;
  }

  if (profile.attributes === undefined || profile.attributes === null) {
    if (mode === 'put') throw new SunshineError(400, 'profile.attributes is required');
  } else if (!isObject(profile.attributes)) {
    throw new SunshineError(400, 'profile.attributes must be an object');
  } else {
    input.attributes = profile.attributes;
  }

  if (profile.identifiers === undefined || profile.identifiers === null) {
    if (mode === 'put') throw new SunshineError(400, 'profile.identifiers is required');
  } else if (!Array.isArray(profile.identifiers)) {
    throw new SunshineError(400, 'profile.identifiers must be an array');
  } else {
    input.identifiers = profile.identifiers.map(parseIdentifier);
  }
  return input;
}

function parseIdentifier(raw: unknown, index: number): Identifier {
  if (!isObject(raw)) throw new SunshineError(400, `profile.identifiers[${index}] must be an object`);
  const { type, value } = raw;
  if (typeof type !== 'string' || type === '') {
    throw new SunshineError(400, `profile.identifiers[${index}].type must be a non-empty string`);
  }
  // 003's own JSON example sends a phone_number as a number (12345678); its responses show strings.
  // Numbers are accepted and stored as their decimal string.
  if (typeof value === 'number' && Number.isFinite(value)) return { type, value: String(value) };
  if (typeof value !== 'string' || value === '') {
    throw new SunshineError(400, `profile.identifiers[${index}].value must be a non-empty string`);
  }
  return { type, value };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
