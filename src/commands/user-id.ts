import { ConfigError } from '../core/config-error.js';

/**
 * The `<userId>` argument of `forget`, `sync-user` and `history` (issue 8.9): an empty (or blank) id,
 * or one with control characters, is a usage error (exit 2), never a request for user ''.
 */
export function requireUserId(raw: string): string {
  if (raw.trim() === '') throw new ConfigError('<userId>: empty user id; give the source user id');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(raw))
    throw new ConfigError('<userId>: the user id contains a control character (CR, LF, tab, ...)');
  return raw;
}
