import { createHmac } from 'node:crypto';
import type { FieldDiff, FieldValue } from './types.js';

/**
 * PII masking for run records, reports, `history` and plan files. Emails keep their first character
 * and domain (`j***@example.com`), names their first character (`J***`): enough for an operator to
 * recognise a record, not enough to read a customer list out of Redis. Everything else (ids, flags)
 * is kept, because reports are useless without them.
 *
 * Issue 12.7: with a mask key (a per-install secret, src/store/mask-key.ts) a masked value also carries
 * a short keyed fingerprint, `j***@example.com#3fa2`: two different values almost never look the same
 * (1 in 65,536) and the same value always does, so a diff shows that an email changed without showing
 * either address. Without a key (plan files, logs) the mask is the plain one.
 */

/** The per-install key of the fingerprints (bytes, or its hex text). Never logged, never in a report. */
export type MaskKey = Uint8Array | string;

/** Hex characters of the fingerprint: 16 bits, enough to tell two values of one field apart. */
export const FINGERPRINT_LENGTH = 4;

/** `#` + the first 4 hex characters of HMAC-SHA256(key, value): stable per install, reveals nothing. */
export function fingerprint(value: string, key: MaskKey): string {
  if (recent?.key !== key) recent = { key, prints: new Map() };
  let print = recent.prints.get(value);
  if (print === undefined) {
    const mac = createHmac('sha256', typeof key === 'string' ? keyBytes(key) : key);
    print = `#${mac.update(value, 'utf8').digest('hex').slice(0, FINGERPRINT_LENGTH)}`;
    // The oldest goes first (a Map iterates in insertion order).
    if (recent.prints.size >= RECENT_MAX) recent.prints.delete(recent.prints.keys().next().value!);
    recent.prints.set(value, print);
  }
  return print;
}

/**
 * Issue 11: the fingerprints of the last RECENT_MAX values masked with the last key. A user's names
 * and email are masked once per target within moments of each other (the scan enqueues a chunk's users
 * for every target at once): 10 HMACs a user for the default mapping, 4 or 5 distinct values. In
 * memory only, like the job data that carries the same values; a new key (another install's, a test's)
 * starts afresh, so a fingerprint is always that of the key asked for.
 */
const RECENT_MAX = 4096;
let recent: { key: MaskKey; prints: Map<string, string> } | undefined;

/** The last text key's bytes (one key per install: converted once, not once per masked value). */
let lastKey: { text: string; bytes: Buffer } | undefined;
function keyBytes(text: string): Buffer {
  if (lastKey?.text !== text) lastKey = { text, bytes: Buffer.from(text, 'utf8') };
  return lastKey.bytes;
}

/** The first character (code point) of a non-empty string, as `[...value][0]` without the array. */
function first(value: string): string {
  return String.fromCodePoint(value.codePointAt(0)!);
}

const EMAIL_RE = /^[^@\s]+@[^@\s]+$/;
const EMAIL_KEY_RE = /e-?mail/i;
const NAME_KEY_RE = /name/i;

export function maskEmail(value: string, key?: MaskKey): string {
  const at = value.lastIndexOf('@');
  if (at <= 0) return maskName(value, key);
  return `${first(value)}***${value.slice(at)}${key ? fingerprint(value, key) : ''}`;
}

export function maskName(value: string, key?: MaskKey): string {
  if (value === '') return value;
  return `${first(value)}***${key ? fingerprint(value, key) : ''}`;
}

/** The last segment of a dotted field name: `attributes.first_name` -> `first_name`. */
function leaf(key: string): string {
  const dot = key.lastIndexOf('.');
  return dot === -1 ? key : key.slice(dot + 1);
}

/** Masks one value given the field it belongs to. */
export function maskValue(key: string, value: FieldValue, maskKey?: MaskKey): FieldValue;
export function maskValue(key: string, value: unknown, maskKey?: MaskKey): unknown;
export function maskValue(key: string, value: unknown, maskKey?: MaskKey): unknown {
  if (typeof value !== 'string') return value;
  const k = leaf(key);
  if (EMAIL_KEY_RE.test(k) || EMAIL_RE.test(value.trim())) return maskEmail(value, maskKey);
  if (NAME_KEY_RE.test(k)) return maskName(value, maskKey);
  return value;
}

export function maskDiff(diff: FieldDiff, maskKey?: MaskKey): FieldDiff {
  const out: FieldDiff = {};
  for (const [field, change] of Object.entries(diff)) {
    const entry: { from?: FieldValue; to?: FieldValue } = {};
    if (change.from !== undefined) entry.from = maskValue(field, change.from, maskKey);
    if (change.to !== undefined) entry.to = maskValue(field, change.to, maskKey);
    out[field] = entry;
  }
  return out;
}

/**
 * Masks a request body (any JSON): keys named like emails or names, and any string that looks like
 * an email wherever it sits (Sunshine identifiers are `{type: 'email', value: ...}`).
 */
export function maskBody(body: unknown, key = '', maskKey?: MaskKey): unknown {
  if (Array.isArray(body)) return body.map((v) => maskBody(v, key, maskKey));
  if (body !== null && typeof body === 'object') {
    const obj = body as Record<string, unknown>;
    // `{type: 'email', value: 'x'}` (Sunshine identifiers): the value is an email whatever it looks like.
    const typed = typeof obj.type === 'string' ? obj.type : undefined;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) {
      out[k] = k === 'value' && typed !== undefined ? maskValue(typed, v, maskKey) : maskBody(v, k, maskKey);
    }
    return out;
  }
  return maskValue(key, body, maskKey);
}

/** Masks an identifier query or path segment that embeds an email (`.../email:j.doe@x.com`). */
export function maskPath(path: string): string {
  // No `@` (raw or encoded), nothing to mask: the regex's search skipped (issue 11: every request's path).
  if (!path.includes('@') && !path.includes('%40')) return path;
  return path.replace(/([^/:=?&%]+)(@|%40)([^/:?&\s]+)/g, (_m, local: string, at: string, domain: string) => {
    return `${[...decodeURIComponentSafe(local)][0] ?? ''}***${at}${domain}`;
  });
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
