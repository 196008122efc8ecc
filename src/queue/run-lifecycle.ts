import type { RunStatus } from '../store/run-record.js';
import type { RunStore } from '../store/run-store.js';
import { FAILURE_RATE_ABORT, type RunAlerts } from './run-alerts.js';

/**
 * Ends a run once its scan has ended and every sync job it enqueued has settled (completed, or failed
 * for good). Called by whoever may be the last: each sync job after it settles, and the scan job when
 * it ends. Idempotent; any process may call it: the decision and the write are one Lua script
 * (`RunStore.finishIfDone`, issue 8.8), so two processes can never both end the run, nor one end it
 * on a state another process changed in between.
 *
 * The status: `failed` when the scan failed; `aborted` when an abort was asked (an aborted run never
 * counts as a complete scan, even if every page was read before the abort: issue 5 concludes that
 * users left only from complete scans of runs that ran to the end); `held` when the safety brake held
 * the run's removals (issue 5: it waits for `backfill --confirm-deletes`); else `completed`.
 */
export async function maybeFinishRun(
  runs: RunStore,
  runId: string,
  /** Issue 12.3: told when this call ended the run (only one call does). */
  alerts?: RunAlerts,
): Promise<RunStatus | null> {
  const status = await runs.finishIfDone(runId);
  if (status) alerts?.runEnded(runId, status);
  return status;
}

/** Users a target must have settled before `--max-failure-rate` is judged (issue 4: "after the first 100"). */
export const FAILURE_RATE_MIN_USERS = 100;

/**
 * `--max-failure-rate`: asks the run to abort once failed+rejected exceed the share of a target's
 * outcomes, after its first 100. Called by the workers as failures happen (a run can finish between
 * two polls of the command) and by `waitForRun`. Returns the abort reason when it asked.
 */
export async function checkFailureRate(
  runs: RunStore,
  runId: string,
  rate: number | undefined,
  /** Issue 12.3: alerted when this call asks the abort (deduplicated across callers by the alert's claim). */
  alerts?: RunAlerts,
): Promise<string | null> {
  if (rate === undefined) return null;
  const run = await runs.get(runId);
  if (run?.status !== 'running' || run.abortReason) return null;
  for (const [t, c] of Object.entries(run.targets)) {
    const done = Object.values(c.outcomes).reduce((a, b) => a + b, 0);
    const bad = c.outcomes.failed + c.outcomes.rejected;
    if (done >= FAILURE_RATE_MIN_USERS && bad / done > rate) {
      const reason = `${FAILURE_RATE_ABORT} in ${t}: ${bad} of ${done} failed or rejected (> ${rate})`;
      await runs.requestAbort(runId, reason);
      alerts?.failureRateExceeded(runId, reason);
      return reason;
    }
  }
  return null;
}

/** `90 s`, `15 min`, `24 h`: a wait as an operator reads it. */
export function formatWait(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${Math.round(ms / 100) / 10} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 6000) / 10} min`;
  return `${Math.round(ms / 360_000) / 10} h`;
}
