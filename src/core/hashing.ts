import { hash } from 'node:crypto';
import type { FieldMap } from './types.js';

/**
 * JSON with object keys sorted at every level, so that two equal payloads always serialise to the same
 * string whatever order the mapping produced their keys in.
 */
export function stableStringify(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableStringify(obj[k])}`).join(',')}}`;
}

/** sha256 of the text's UTF-8 bytes, as hex. One-shot `crypto.hash` (Node >= 20.12): no Hash object per call. */
export function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex');
}

/** sha256 of the text's UTF-8 bytes, as base64url (43 characters; callers keep a prefix). One-shot. */
export function sha256Base64url(text: string): string {
  return hash('sha256', text, 'base64url');
}

/** The change-detection hash of a payload: sha256 of its sorted-key JSON. */
export function hashFields(fields: FieldMap): string {
  return sha256Hex(stableStringify(fields));
}

/**
 * A user id as it may appear in a Redis key member or a BullMQ job id: the first 16 hex digits of its
 * sha256. User ids may contain `:` (forbidden in BullMQ job ids) and any other character; 64 bits make
 * a collision among a few million users vanishingly unlikely (~1e-7 at 2M users).
 */
export function userKey(userId: string): string {
  return sha256Hex(userId).slice(0, 16);
}
