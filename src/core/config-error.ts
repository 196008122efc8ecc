/**
 * A configuration the process cannot start with. The CLI prints `message` (which names the variable,
 * file or path and says what to fix) and exits with code 2. Never carries a secret value.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'E_CONFIG';
  constructor(
    message: string,
    /** Each problem found, one line per field. */
    readonly problems: string[] = [message],
  ) {
    super(message);
  }
}
