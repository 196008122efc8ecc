import { validateDetailed } from 'node-cron';

/**
 * Checks a cron expression the way the daemon uses it (src/daemon/scheduler.ts): 5 fields (minute
 * first) or 6 (seconds first). Returns the problem naming `SYNC_SCHEDULE`, or null when it is valid.
 * Called when the config is loaded (issue 8.9), so `config check` and every command refuse a bad one.
 */
export function scheduleProblem(expression: string): string | null {
  const trimmed = expression.trim();
  const fields = trimmed.split(/\s+/).length;
  const detail = trimmed === '' ? null : validateDetailed(trimmed);
  if (detail?.valid && (fields === 5 || fields === 6)) return null;
  const why = detail?.errors.map((e) => e.message).join('; ') || 'expected 5 or 6 fields';
  return (
    `SYNC_SCHEDULE: '${expression}' is not a valid cron expression (${why}); use 5 fields, ` +
    `e.g. '*/15 * * * *' (every 15 minutes), or 6 with seconds first`
  );
}
