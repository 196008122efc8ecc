import { ConfirmError } from '../../../jobs/reconcile-deletions.js';
import * as runActions from '../../../jobs/run-actions.js';
import { ConfigError } from '../../core/config-error.js';
import type { Logger } from '../../log.js';
import type { Engine } from '../../queue/engine.js';
import type { OpsEngine } from '../ops-engine.js';
import { errorPage, type PageResult, redirect, runUrl, userUrl } from './layout.js';
import { RUN_ID_RE } from './run-page.js';

/**
 * The pages' buttons (issue 12.1), each a `<form method="post">` answered with a 303 back to its
 * page. The server has already refused them in read-only mode (403) and cross-site (403); these run
 * the same functions as `backfill --confirm-deletes` and `retry-failed --run` (jobs/run-actions.ts),
 * which only enqueue: the daemon's workers do the work, and the run page shows it.
 */

/** What "sync now" calls: built by the daemon (`POST /users/{id}/sync`); its answer's status is shown. */
export type SyncNow = (userId: string) => Promise<{ status: number; body: unknown }>;

export async function confirmDeletesAction(
  engine: OpsEngine,
  actionEngine: Engine,
  runId: string,
  log: Logger,
): Promise<PageResult> {
  const missing = await unknownRun(engine, runId);
  if (missing) return missing;
  try {
    const r = await runActions.confirmDeletes(actionEngine, runId);
    log.warn(
      { runId, removals: r.removals, returned: r.returned, via: 'ops page' },
      'held deletions confirmed from the ops page',
    );
    return redirect(`${runUrl(runId)}?done=confirmed`);
  } catch (err) {
    if (err instanceof ConfirmError) return redirect(`${runUrl(runId)}?done=confirm-refused`);
    throw err;
  }
}

export async function retryFailedAction(
  engine: OpsEngine,
  actionEngine: Engine,
  runId: string,
  log: Logger,
): Promise<PageResult> {
  const missing = await unknownRun(engine, runId);
  if (missing) return missing;
  try {
    const r = await runActions.retryFailed(actionEngine, { runId });
    if (!r.runId) return redirect(`${runUrl(runId)}?done=nothing-to-retry`);
    log.warn(
      { runId, retryRun: r.runId, jobs: r.jobs, via: 'ops page' },
      'dead letters re-driven from the ops page',
    );
    return redirect(`${runUrl(runId)}?done=retried&retry=${encodeURIComponent(r.runId)}`);
  } catch (err) {
    if (err instanceof ConfigError) return redirect(`${runUrl(runId)}?done=nothing-to-retry`);
    throw err;
  }
}

export async function syncNowAction(syncNow: SyncNow, userId: string, log: Logger): Promise<PageResult> {
  let status: number;
  let body: unknown;
  try {
    ({ status, body } = await syncNow(userId));
  } catch (err) {
    log.error({ err: (err as Error).message }, 'sync now from the ops page failed');
    status = 500;
    body = undefined;
  }
  const runId =
    body !== null && typeof body === 'object' && typeof (body as { runId?: unknown }).runId === 'string'
      ? (body as { runId: string }).runId
      : undefined;
  const run = runId && RUN_ID_RE.test(runId) ? `&run=${encodeURIComponent(runId)}` : '';
  return redirect(`${userUrl(userId)}?sync=${Number.isInteger(status) ? status : 500}${run}`);
}

async function unknownRun(engine: OpsEngine, runId: string): Promise<PageResult | undefined> {
  if (RUN_ID_RE.test(runId) && (await engine.runs.completion(runId))) return undefined;
  return errorPage(404, 'Run not found', `No run ${runId} is recorded.`);
}
