import type { Config } from '../config/schema.js';
import { maskBody } from '../core/masking.js';
import type { TargetId } from '../core/targets.js';
import type { FieldMap } from '../core/types.js';
import type { Logger } from '../log.js';
import type { DeletePolicy, DeletionSettings, DeletionSummary } from '../store/deletions.js';

/**
 * Users who left the source (issue 5), the policy half: the delete policy per target, the safety brake
 * (`MAX_DELETES`, `MAX_DELETE_RATE`), the `deletions.held` alert and the plan lines of a dry run. The
 * Redis half (seen/gone/orphan sets, the run-hash summary) is src/store/deletions.ts.
 */

export function deletionSettings(config: Config): DeletionSettings {
  const policy: Partial<Record<TargetId, DeletePolicy>> = {};
  for (const t of ['sunshine', 'zephr', 'prelude'] as const) {
    const p = config.targets[t]?.onDelete;
    if (p) policy[t] = p;
  }
  return { policy, maxDeleteRate: config.sync.maxDeleteRate, maxDeletes: config.sync.maxDeletes };
}

export function policyOf(settings: DeletionSettings | undefined, target: TargetId): DeletePolicy {
  return settings?.policy[target] ?? 'ignore';
}

/** The env variable naming a target's policy, for messages. */
export function policyVariable(target: TargetId): string {
  return `${target.toUpperCase()}_ON_DELETE`;
}

/**
 * The safety brake: a run that would remove more than `maxDeleteRate` of a target's known users, or
 * more than `maxDeletes` of them, removes nobody. Only targets whose policy acts count (`ignore`
 * removes nothing). Returns the reason, or null when the removals may go ahead.
 */
export function brakeReason(
  summary: DeletionSummary['targets'],
  settings: Pick<DeletionSettings, 'maxDeleteRate' | 'maxDeletes'>,
): string | null {
  const reasons: string[] = [];
  for (const [t, d] of Object.entries(summary)) {
    if (!d || d.policy === 'ignore' || d.gone === 0) continue;
    const share = d.known ? d.gone / d.known : 1;
    if (d.gone > settings.maxDeletes)
      reasons.push(`${t}: ${d.gone} removals > MAX_DELETES ${settings.maxDeletes}`);
    else if (share > settings.maxDeleteRate)
      reasons.push(
        `${t}: ${d.gone} of ${d.known} known users (${formatShare(share)}) > MAX_DELETE_RATE ${formatShare(settings.maxDeleteRate)}`,
      );
  }
  return reasons.length ? reasons.join('; ') : null;
}

function formatShare(x: number): string {
  return `${Math.round(x * 1000) / 10}%`;
}

/** Stable event name of the brake's alert (logs at error level; alert rules match on it). */
export const HELD_EVENT = 'deletions.held';

/** What the brake tells the operator, in the log and (once it exists) the operations webhook. */
export interface HeldAlert {
  event: typeof HELD_EVENT;
  runId: string;
  reason: string;
  targets: DeletionSummary['targets'];
  confirm: string;
}

/**
 * Raises the brake's alert. Today that is one error-level log line with `event: deletions.held`;
 * the operations issue's webhook, when it lands, is called from here with the same object (it holds
 * counts and the run id only, never a user id).
 */
export function alertHeld(logger: Logger, alert: Omit<HeldAlert, 'event' | 'confirm'>): HeldAlert {
  const full: HeldAlert = {
    event: HELD_EVENT,
    ...alert,
    confirm: `profile-sync backfill --confirm-deletes ${alert.runId}`,
  };
  logger.error(
    full,
    `DELETIONS HELD by the safety brake in run ${alert.runId}: ${alert.reason}. Nobody was removed. Check the source, then confirm with: ${full.confirm} (or raise MAX_DELETE_RATE / MAX_DELETES)`,
  );
  return full;
}

/** Number of requests a removal sends (for dry-run plans): Sunshine and Zephr GET then write, Prelude one PATCH. */
export function removalRequests(target: TargetId): number {
  return target === 'prelude' ? 1 : 2;
}

/** A dry run's plan line for one removal, PII masked unless the run stores it. */
export function removalPlanLine(
  target: TargetId,
  userId: string,
  policy: DeletePolicy,
  previous: FieldMap | null,
  pii: boolean,
): Record<string, unknown> {
  const how: Record<TargetId, string> = {
    sunshine:
      'GET the profile, then DELETE /api/v2/user_profiles/{id} (or PUT it without managed fields when other systems own identifiers)',
    zephr: 'GET /blaize/profile/{appId}, then PUT it without the managed keys',
    prelude: 'PATCH the managed keys to ""',
  };
  return {
    target,
    userId,
    method: 'REMOVE',
    note: `left the source; ${policyVariable(target)}=${policy}: ${how[target]}`,
    lastWritten: previous && !pii ? maskBody(previous) : previous,
  };
}
