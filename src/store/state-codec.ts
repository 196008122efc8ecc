import { hashFields, sha256Base64url } from '../core/hashing.js';
import type { FieldMap, FieldValue } from '../core/types.js';

/**
 * Issue 11.4: the compact encoding of one (target, user) state value, the field of `{p}:state:<target>`.
 *
 * A million users in three targets make three million values, so every byte of a value counts three
 * million times. The first format (v1, until issue 11.4) was `{"h":<sha256 hex>,"f":{...},"t":<ms>}`:
 * 200 to 300 B a value, of which 72 B were the hash and about a third the payload's key names. v2 keeps the
 * payload (the diff base of the next write and of the merge modes) but not the hash, and names the
 * payload's sorted key list once per install instead of once per user:
 *
 *     <writtenAt, base 36 ms>,<key set id, 6 chars><JSON array of the values, in sorted key order>
 *     e.g. `mij5q2ab,Xk3_9a["Ben","García","ben.garcia@example.com",null,"Ben García"]`
 *
 * The key set id is the first 6 base64url characters of sha256 of the key list's JSON; the list itself
 * sits in `{p}:state:<target>:keys` (id -> key list JSON), written (HSETNX) before the first value that
 * uses it and again (a no-op) in the transaction of every value written. A value equal to the user id (Sunshine's `identifiers.external_id`) is written `null`, which
 * no payload holds (mapping values are strings, numbers or booleans). When an id is already taken by
 * another key list (a 36-bit collision, never seen in practice), the value keeps its keys inline:
 * `<writtenAt>,{sorted-key JSON}`.
 *
 * "Unchanged" is decided without the hash and without decoding: the next payload, encoded the same way,
 * is compared as a string with the stored value's part after the comma (same key set id, same values).
 * Both formats are read; v1 values are rewritten as v2 by the scan when it reads them (state-store.ts).
 */

/** A payload's sorted key list and what identifies it. */
export interface KeySet {
  keys: string[];
  /** JSON of `keys`: what is stored under the id. */
  json: string;
  /** First 6 base64url characters of sha256(json). */
  id: string;
}

const ID_LENGTH = 6;
/** Key sets by the payload's keys in the order the mapping produced them (no sort on a hit). */
const keySets = new Map<string, KeySet>();
/** The last few (own keys, key set) pairs: a hit is an array compare, no string built. */
const recent: { own: string[]; ks: KeySet }[] = [];

/** The key set of a payload (cached per distinct list: a mapping produces a handful). */
export function keySetOf(fields: FieldMap): KeySet {
  const own = Object.keys(fields);
  // A key whose value is undefined is no key (stableStringify drops it): such a payload is not cached
  // under its raw key list, which would name one key more.
  for (const k of own)
    if (fields[k] === undefined) return makeKeySet(own.filter((x) => fields[x] !== undefined));
  for (const r of recent) if (sameKeys(r.own, own)) return r.ks;
  const order = own.join('\u0000');
  let ks = keySets.get(order);
  if (!ks) {
    ks = makeKeySet(own);
    if (keySets.size < 10_000) keySets.set(order, ks);
  }
  recent.unshift({ own, ks });
  if (recent.length > 8) recent.pop();
  return ks;
}

function makeKeySet(own: string[]): KeySet {
  const keys = [...own].sort();
  const json = JSON.stringify(keys);
  return {
    keys,
    json,
    id: sha256Base64url(json).slice(0, ID_LENGTH),
  };
}

function sameKeys(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The values part of a v2 body: JSON array in sorted key order, the user id as null. */
function valuesJson(userId: string, fields: FieldMap, ks: KeySet): string {
  const values: (FieldValue | null)[] = new Array(ks.keys.length);
  for (let i = 0; i < ks.keys.length; i++) {
    const v = fields[ks.keys[i]!]!;
    values[i] = v === userId ? null : v;
  }
  return JSON.stringify(values);
}

/** The part of a v2 value after the comma: key set id and values (or `{...}` inline). */
export function encodeBody(userId: string, fields: FieldMap, ks: KeySet, inline: boolean): string {
  if (inline) return inlineJson(ks, fields);
  return `${ks.id}${valuesJson(userId, fields, ks)}`;
}

export function encodeState(
  userId: string,
  fields: FieldMap,
  writtenAt: number,
  ks: KeySet,
  inline: boolean,
): string {
  return `${writtenAt.toString(36)},${encodeBody(userId, fields, ks, inline)}`;
}

function inlineJson(ks: KeySet, fields: FieldMap): string {
  return `{${ks.keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(fields[k])}`).join(',')}}`;
}

/** A stored value split into what the readers need, before the payload is decoded. */
export type RawState =
  | { v: 1; hash: string; fields: FieldMap; writtenAt: number }
  | { v: 2; writtenAt: number; body: string; keySetId?: string };

/** Splits a stored value (either format). Throws on a value neither format explains. */
export function splitState(raw: string): RawState {
  if (raw.startsWith('{')) return { v: 1, ...splitV1(raw) };
  const comma = raw.indexOf(',');
  const writtenAt = Number.parseInt(raw.slice(0, comma), 36);
  if (comma < 1 || !Number.isFinite(writtenAt)) throw new Error(`unreadable state value ${raw.slice(0, 40)}`);
  const body = raw.slice(comma + 1);
  return body.startsWith('{')
    ? { v: 2, writtenAt, body }
    : { v: 2, writtenAt, body, keySetId: body.slice(0, ID_LENGTH) };
}

/** The write time of a stored value (either format), without decoding its payload. */
export function writtenAtOf(raw: string): number {
  return raw.startsWith('{') ? (JSON.parse(raw) as { t: number }).t : Number.parseInt(raw, 36);
}

/** Decodes a v2 body with its key list (`keys` unused for an inline body). */
export function decodeBody(userId: string, body: string, keys: string[] | undefined): FieldMap {
  if (body.startsWith('{')) return JSON.parse(body) as FieldMap;
  if (!keys)
    throw new Error(`state of user ${JSON.stringify(userId)}: unknown key set ${body.slice(0, ID_LENGTH)}`);
  const values = JSON.parse(body.slice(ID_LENGTH)) as (FieldValue | null)[];
  if (values.length !== keys.length)
    throw new Error(
      `state of user ${JSON.stringify(userId)}: ${values.length} values for ${keys.length} keys`,
    );
  const out: FieldMap = {};
  keys.forEach((k, i) => {
    out[k] = values[i] ?? userId;
  });
  return out;
}

/**
 * What the scan compares: true when `next` is exactly the payload of the stored value `raw` (either
 * format). v2: a string compare of encodings, nothing decoded; `keyLists` (id -> key list JSON, as
 * stored) rules out a key set id that names another list.
 */
export function sameAsValue(
  raw: string,
  userId: string,
  next: FieldMap,
  keyLists: ReadonlyMap<string, string>,
): boolean {
  if (raw.charCodeAt(0) === OPEN_BRACE) return splitV1(raw).hash === hashFields(next);
  const comma = raw.indexOf(',');
  const ks = keySetOf(next);
  if (raw.charCodeAt(comma + 1) === OPEN_BRACE) {
    const inline = inlineJson(ks, next);
    return raw.length - comma - 1 === inline.length && raw.endsWith(inline);
  }
  if (!raw.startsWith(ks.id, comma + 1) || (keyLists.get(ks.id) ?? ks.json) !== ks.json) return false;
  return sameValues(raw, comma + 1 + ID_LENGTH, userId, next, ks);
}

/** A string JSON writes as `"` + itself + `"` (no quote, backslash, control character or surrogate). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the characters JSON escapes
const PLAIN = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;

/**
 * Whether `raw` from `pos` to its end is exactly `valuesJson(userId, fields, ks)`, token by token
 * without building it (issue 11: the scan compares three payloads a user; the string it built was most
 * of the compare's cost). A value that needs escaping is compared as its JSON.
 */
function sameValues(raw: string, pos: number, userId: string, fields: FieldMap, ks: KeySet): boolean {
  if (raw.charCodeAt(pos++) !== OPEN_BRACKET) return false;
  const keys = ks.keys;
  for (let i = 0; i < keys.length; i++) {
    if (i > 0 && raw.charCodeAt(pos++) !== COMMA) return false;
    const v = fields[keys[i]!]!;
    if (typeof v === 'string' && v !== userId && PLAIN.test(v)) {
      if (raw.charCodeAt(pos) !== QUOTE || !raw.startsWith(v, pos + 1)) return false;
      pos += v.length + 1;
      if (raw.charCodeAt(pos++) !== QUOTE) return false;
      continue;
    }
    const token = v === userId ? 'null' : JSON.stringify(v);
    if (!raw.startsWith(token, pos)) return false;
    pos += token.length;
  }
  return raw.charCodeAt(pos) === CLOSE_BRACKET && pos + 1 === raw.length;
}

const OPEN_BRACKET = 91;
const CLOSE_BRACKET = 93;
const COMMA = 44;
const QUOTE = 34;

/** The key set id a v2 value names (undefined for v1 and inline values); `hint`: tried first, no copy. */
export function keySetIdOf(raw: string, hint?: string): string | undefined {
  if (raw.charCodeAt(0) === OPEN_BRACE) return undefined;
  const comma = raw.indexOf(',');
  if (raw.charCodeAt(comma + 1) === OPEN_BRACE) return undefined;
  if (hint !== undefined && raw.startsWith(hint, comma + 1)) return hint;
  return raw.slice(comma + 1, comma + 1 + ID_LENGTH);
}

const OPEN_BRACE = 123;

function splitV1(raw: string): { hash: string; fields: FieldMap; writtenAt: number } {
  const s = JSON.parse(raw) as { h: string; f: FieldMap; t: number };
  return { hash: s.h, fields: s.f, writtenAt: s.t };
}
