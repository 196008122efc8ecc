/**
 * The link table file: CSV `source_id,prelude_user_id` with a header row (RFC 4180: fields may be
 * quoted, `""` is a quote inside a quoted field, quoted fields may hold commas and line breaks; CRLF or
 * LF line ends; a UTF-8 BOM, as spreadsheet exports write one, is tolerated). Everything is checked
 * before anything is stored, and every bad row is reported by its line number.
 */

import type { LinkRow } from '../../store/links.js';
import { unsafePathSegment } from '../target-common.js';

export interface LinkParseResult {
  rows: LinkRow[];
  /** `line N: what is wrong`, in file order. Empty when the file is good. */
  errors: string[];
}

export const LINK_HEADER = ['source_id', 'prelude_user_id'] as const;

/** Splits CSV text into records (arrays of fields), each with the line it starts on. */
export function parseCsv(text: string): { fields: string[]; line: number; error?: string }[] {
  const out: { fields: string[]; line: number; error?: string }[] = [];
  const s = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  let i = 0;
  let line = 1;
  while (i < s.length) {
    const start = line;
    const fields: string[] = [];
    let error: string | undefined;
    for (;;) {
      let field = '';
      if (s[i] === '"') {
        i++;
        for (;;) {
          if (i >= s.length) {
            error = 'unterminated quoted field';
            break;
          }
          const c = s[i]!;
          if (c === '"') {
            if (s[i + 1] === '"') {
              field += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (c === '\n') line++;
          field += c;
          i++;
        }
        if (!error && i < s.length && s[i] !== ',' && s[i] !== '\n' && s[i] !== '\r') {
          error = 'text after a closing quote (a quote inside a field must be doubled: "")';
          while (i < s.length && s[i] !== '\n') i++;
        }
      } else {
        while (i < s.length && s[i] !== ',' && s[i] !== '\n' && s[i] !== '\r') {
          if (s[i] === '"' && !error)
            error = 'a quote inside an unquoted field (quote the field and double it)';
          field += s[i];
          i++;
        }
      }
      fields.push(field);
      if (s[i] === ',') {
        i++;
        continue;
      }
      break;
    }
    if (s[i] === '\r') i++;
    if (s[i] === '\n') {
      i++;
      line++;
    }
    // Blank lines (a trailing newline, an empty line) are not records.
    if (!(fields.length === 1 && fields[0] === '' && !error)) out.push({ fields, line: start, error });
  }
  return out;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: what is refused
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Parses and validates a link file. Duplicate source ids are errors: which one should win? */
export function parseLinkCsv(text: string): LinkParseResult {
  const records = parseCsv(text);
  const errors: string[] = [];
  const rows: LinkRow[] = [];
  const header = records.shift();
  const want = LINK_HEADER.join(',');
  if (!header || header.fields.map((f) => f.trim().toLowerCase()).join(',') !== want) {
    return { rows, errors: [`line 1: the header must be "${want}"`] };
  }
  const seen = new Map<string, number>();
  for (const r of records) {
    const where = `line ${r.line}`;
    if (r.error) {
      errors.push(`${where}: ${r.error}`);
      continue;
    }
    if (r.fields.length !== 2) {
      errors.push(`${where}: expected 2 fields (source_id,prelude_user_id), found ${r.fields.length}`);
      continue;
    }
    const [sourceId, preludeUserId] = r.fields as [string, string];
    if (sourceId === '') errors.push(`${where}: empty source_id`);
    else if (preludeUserId.trim() === '') errors.push(`${where}: empty prelude_user_id`);
    else if (unsafePathSegment(preludeUserId.trim()) !== undefined)
      errors.push(
        `${where}: prelude_user_id ${JSON.stringify(preludeUserId.trim())} ${unsafePathSegment(preludeUserId.trim())}; it cannot be a Prelude user id (it would change the request path)`,
      );
    else if (CONTROL.test(sourceId) || CONTROL.test(preludeUserId))
      // No source id holds one (the source connector refuses them), and Prelude's ids never do.
      errors.push(
        `${where}: ${CONTROL.test(sourceId) ? 'source_id' : 'prelude_user_id'} holds a control character`,
      );
    else if (seen.has(sourceId)) errors.push(`${where}: source_id already on line ${seen.get(sourceId)}`);
    else {
      seen.set(sourceId, r.line);
      // Source ids are kept verbatim (they may legitimately hold spaces); Prelude ids are trimmed.
      rows.push({ sourceId, preludeUserId: preludeUserId.trim(), line: r.line });
    }
  }
  return { rows, errors };
}
