import { z } from 'zod';
import type { SourceRecord, SourceUser } from '../../core/types.js';

/**
 * Validation of one identity-service user (seed 002: `{id, firstName, lastName, email}`, all strings).
 * A record that fails becomes `{ok: false, reason}` naming the field; it never stops a scan.
 *
 * Limits (our choice; seed 002 states none) — generous for real data, tight enough that one absurd
 * record cannot blow up a payload, a Redis key or a log line:
 * - `id`: 1..256 characters, not `.` or `..` (URL parsers collapse those path segments even encoded:
 *   `PATCH …/users/../profile` would reach another resource), no control characters (it ends up in
 *   URLs, identifier queries, job ids);
 * - no field holds a control character (CR/LF, NUL, …): it would reach every target's payload and
 *   header-like contexts (issue 8.9);
 * - `firstName`, `lastName`: at most 512 characters;
 * - `email`: at most 320 characters (RFC 3696: 64 local + @ + 255 domain). Its format is NOT checked:
 *   mixed-case, padded or missing emails are real data; the mapping decides what to send.
 * Null or absent fields become undefined; empty strings stay as they are (the mapping decides).
 * Unknown extra fields are ignored.
 */
export const SOURCE_LIMITS = { id: 256, name: 512, email: 320 } as const;

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what we refuse
const CONTROL = /[\u0000-\u001f\u007f]/;

const optionalString = (max: number) =>
  z
    .string({ error: (iss) => (iss.input === undefined ? undefined : 'expected a string or null') })
    .max(max, `longer than ${max} characters`)
    .refine((s) => !CONTROL.test(s), 'contains control characters')
    .nullish()
    .transform((v) => v ?? undefined);

export const sourceUserSchema = z.object({
  id: z
    .string({
      error: (iss) => (iss.input === undefined || iss.input === null ? 'missing' : 'expected a string'),
    })
    .min(1, 'empty')
    .max(SOURCE_LIMITS.id, `longer than ${SOURCE_LIMITS.id} characters`)
    .refine((s) => s !== '.' && s !== '..', 'is "." or "..", which URLs cannot carry as a path segment')
    .refine((s) => !CONTROL.test(s), 'contains control characters'),
  firstName: optionalString(SOURCE_LIMITS.name),
  lastName: optionalString(SOURCE_LIMITS.name),
  email: optionalString(SOURCE_LIMITS.email),
});

/** A usable user id for a rejected record's outcome, when the record has one. */
function idOf(raw: unknown): string | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const id = (raw as { id?: unknown }).id;
  return typeof id === 'string' && id.length > 0 && id.length <= SOURCE_LIMITS.id && !CONTROL.test(id)
    ? id
    : undefined;
}

/** Validates one raw record from `GET /user` or `GET /user/{id}/profile`. */
export function parseSourceRecord(raw: unknown): SourceRecord {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, reason: 'record: expected a JSON object' };
  }
  const parsed = sourceUserSchema.safeParse(raw);
  if (parsed.success) {
    const u = parsed.data;
    const user: SourceUser = { id: u.id };
    if (u.firstName !== undefined) user.firstName = u.firstName;
    if (u.lastName !== undefined) user.lastName = u.lastName;
    if (u.email !== undefined) user.email = u.email;
    return { ok: true, user };
  }
  const reason = parsed.error.issues.map((i) => `${i.path.join('.') || 'record'}: ${i.message}`).join('; ');
  const userId = idOf(raw);
  return userId === undefined ? { ok: false, reason } : { ok: false, userId, reason };
}
