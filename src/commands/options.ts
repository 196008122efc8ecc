import { type Config, targetRateLimit, targetWriteMode } from '../config/schema.js';
import { ConfigError } from '../core/config-error.js';
import { TARGET_IDS, type TargetId } from '../core/targets.js';

/**
 * Option parsing shared by the commands (`--targets`, positive integers, rates, `--users`) and the
 * per-target rate limits a dry-run plan prints. Invalid input is a ConfigError (exit 2).
 */

/** `--targets a,b`: known names only (exit 2 otherwise). */
export function parseTargets(raw: string | undefined): TargetId[] | undefined {
  if (raw === undefined) return undefined;
  const list = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = list.filter((t) => !(TARGET_IDS as readonly string[]).includes(t));
  if (bad.length || list.length === 0)
    throw new ConfigError(
      `--targets: unknown target(s) '${bad.join(',') || raw}'; use ${TARGET_IDS.join(',')}`,
    );
  return [...new Set(list)] as TargetId[];
}

export function parsePositiveInt(
  name: string,
  raw: string | undefined,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < 1 || n > max)
    throw new ConfigError(`${name} must be an integer from 1 to ${max} (got '${raw}')`);
  return n;
}

export function parseRate(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === '' || !(n >= 0 && n <= 1))
    throw new ConfigError(`${name} must be a share from 0 to 1, e.g. 0.05 (got '${raw}')`);
  return n;
}

export function parseUsers(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const ids = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (ids.length === 0) throw new ConfigError('--users: give at least one user id');
  return ids;
}

/** Rate limits of the run's targets, for the dry-run plan. */
/** Each target's write mode (issue 11.1), for the dry-run plan table. */
export function writeModesOf(config: Config, targets: TargetId[]): Partial<Record<TargetId, string>> {
  return Object.fromEntries(targets.map((t) => [t, targetWriteMode(config, t).mode]));
}

export function limitsOf(config: Config, targets: TargetId[]): Partial<Record<TargetId, number>> {
  return Object.fromEntries(targets.map((t) => [t, targetRateLimit(config, t)]));
}
