/**
 * Issue 11.4: the value of a Prelude link (`{p}:links:prelude`, field = source user id) carries the
 * Prelude id and how and when the link was found, so one hash holds what two did (issue 10 kept the
 * `{how, at}` JSON in `{p}:links:prelude:how`: ~100 B more per link). Three forms:
 *
 * - compact, for seed 004's ids (`usr_` + 26 lowercase Crockford base32 characters, 130 bits): a byte
 *   1-4 for how, the time in seconds since 2020 in base36 (6 characters until 2089), the 130 bits in 22
 *   base64url characters: 29 bytes, which Redis keeps in a 32-byte allocation, as it kept the bare
 *   30-character id (a value of 31 to 44 bytes takes 48: every byte past 30 costs 16);
 * - general, for any other id: `<id>\x1f<how letter><time, ms in base36>`;
 * - the bare id (before issue 11.4): how and when in the old hash, if anywhere.
 *
 * No Prelude id holds a control character (encodeLink refuses one), so the forms never mix up.
 */
import type { LinkHow, LinkInfo } from './links.js';

const SEP = '\u001f';
const LETTER: Record<LinkHow, string> = { import: 'i', external_id: 'x', email: 'e', create: 'c' };
const HOW_OF: Record<string, LinkHow> = { i: 'import', x: 'external_id', e: 'email', c: 'create' };
const CODE: Record<LinkHow, number> = { import: 1, external_id: 2, email: 3, create: 4 };
const HOW_OF_CODE: readonly LinkHow[] = ['import', 'import', 'external_id', 'email', 'create'];
/** 2020-01-01T00:00:00Z in seconds: the compact form's time is counted from there. */
const EPOCH_S = 1_577_836_800;
const USR_ID = /^usr_[0-9a-hjkmnp-tv-z]{26}$/;
const B32 = '0123456789abcdefghjkmnpqrstvwxyz';
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B32_VALUE = valuesOf(B32);
const B64_VALUE = valuesOf(B64);

function valuesOf(alphabet: string): Int8Array {
  const out = new Int8Array(128).fill(-1);
  for (let i = 0; i < alphabet.length; i++) out[alphabet.charCodeAt(i)] = i;
  return out;
}

/** 26 base32 characters (130 bits) as 22 base64url ones: 2 for the first 10 bits, then 5 per 30 bits. */
function b32ToB64(s: string, from: number): string {
  const head = B32_VALUE[s.charCodeAt(from)]! * 32 + B32_VALUE[s.charCodeAt(from + 1)]!;
  let out = B64[head >> 6]! + B64[head & 63]!;
  for (let g = from + 2; g < from + 26; g += 6) {
    let v = 0;
    for (let i = 0; i < 6; i++) v = v * 32 + B32_VALUE[s.charCodeAt(g + i)]!;
    for (let shift = 24; shift >= 0; shift -= 6) out += B64[(v >>> shift) & 63];
  }
  return out;
}

function b64ToB32(s: string, from: number): string {
  const head = B64_VALUE[s.charCodeAt(from)]! * 64 + B64_VALUE[s.charCodeAt(from + 1)]!;
  let out = B32[head >> 5]! + B32[head & 31]!;
  for (let g = from + 2; g < from + 22; g += 5) {
    let v = 0;
    for (let i = 0; i < 5; i++) v = v * 64 + B64_VALUE[s.charCodeAt(g + i)]!;
    for (let shift = 25; shift >= 0; shift -= 5) out += B32[(v >>> shift) & 31];
  }
  return out;
}

/** The last 22 characters a compact value of this id ends with; '' when the id has no compact form. */
export function compactTail(preludeUserId: string): string {
  return USR_ID.test(preludeUserId) ? b32ToB64(preludeUserId, 4) : '';
}

/** The stored value of a link. Throws for an id holding a control character (no Prelude id does). */
export function encodeLink(preludeUserId: string, how: LinkHow, at: number): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: what is refused
  if (/[\u0000-\u001f]/.test(preludeUserId))
    throw new Error(`prelude user id ${JSON.stringify(preludeUserId)} holds a control character`);
  const seconds = Math.floor(at / 1000) - EPOCH_S;
  if (seconds >= 0 && USR_ID.test(preludeUserId))
    return String.fromCharCode(CODE[how]) + seconds.toString(36) + b32ToB64(preludeUserId, 4);
  return `${preludeUserId}${SEP}${LETTER[how]}${Math.max(0, Math.trunc(at)).toString(36)}`;
}

/** A stored link value, any form: the Prelude id, and how/when when the value carries them. */
export function decodeLink(raw: string): { preludeUserId: string; info?: LinkInfo } {
  const code = raw.charCodeAt(0);
  if (code >= 1 && code <= 4) {
    const seconds = Number.parseInt(raw.slice(1, raw.length - 22), 36);
    return {
      preludeUserId: `usr_${b64ToB32(raw, raw.length - 22)}`,
      info: { how: HOW_OF_CODE[code]!, at: (seconds + EPOCH_S) * 1000 },
    };
  }
  const s = raw.indexOf(SEP);
  if (s < 0) return { preludeUserId: raw };
  return {
    preludeUserId: raw.slice(0, s),
    info: { how: HOW_OF[raw.charAt(s + 1)] ?? 'import', at: Number.parseInt(raw.slice(s + 2), 36) },
  };
}

/** The Prelude id of a stored link value (any form); undefined for none. For raw reads (psGate, readChunk). */
export function linkIdOf(raw: string | null | undefined): string | undefined {
  if (raw === null || raw === undefined) return undefined;
  const code = raw.charCodeAt(0);
  if (code >= 1 && code <= 4) return `usr_${b64ToB32(raw, raw.length - 22)}`;
  const s = raw.indexOf(SEP);
  return s < 0 ? raw : raw.slice(0, s);
}

/** Whether a stored value is in the form before issue 11.4 (the bare id). */
export function isOldLink(raw: string): boolean {
  const code = raw.charCodeAt(0);
  return !(code >= 1 && code <= 4) && !raw.includes(SEP);
}

/**
 * Lua: whether stored value `v` links to Prelude id `id`, whose compact tail (`compactTail`) is `tail`
 * ('' = none). The compact form is compared by its tail, the others by the id before any separator.
 */
export const LUA_LINKS_TO = `
local function linksTo(v, id, tail)
  local b = string.byte(v, 1)
  if b and b >= 1 and b <= 4 then return tail ~= '' and string.sub(v, -22) == tail end
  local s = string.find(v, '\\31', 1, true)
  if s then return string.sub(v, 1, s - 1) == id end
  return v == id
end`;
