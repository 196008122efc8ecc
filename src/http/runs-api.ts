import type { RunRecord } from '../store/run-record.js';
import type { RunStore } from '../store/run-store.js';

/** Runs `GET /api/runs` returns unless `?limit=` says otherwise. */
export const DEFAULT_RUNS_LIMIT = 20;
/** The most `?limit=` may ask for (the RunStore keeps 200 by default). */
export const MAX_RUNS_LIMIT = 200;

/**
 * One run for scripts: ids, kind, status, times, and counts per target. Leaves out the run's `users`
 * option (source user ids) and every item: the full record, diffs included, is
 * `profile-sync report <runId>`, on a machine with access to Redis.
 */
export function runSummary(run: RunRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: run.id,
    kind: run.kind,
    status: run.status,
    startedAt: new Date(run.startedAt).toISOString(),
    endedAt: run.endedAt !== undefined ? new Date(run.endedAt).toISOString() : null,
    durationMs: (run.endedAt ?? Date.now()) - run.startedAt,
    options: {
      targets: run.options.targets,
      dryRun: run.options.dryRun,
      full: run.options.full,
      ...(run.options.users ? { users: run.options.users.length } : {}),
      ...(run.options.limit !== undefined ? { limit: run.options.limit } : {}),
      ...(run.options.retryOf ? { retryOf: run.options.retryOf } : {}),
    },
    scan: {
      status: run.scan.status,
      complete: run.scan.complete,
      records: run.scan.records,
      ...(run.scan.total !== undefined ? { total: run.scan.total } : {}),
    },
    enqueued: run.enqueued,
    settled: run.settled,
    targets: run.targets,
  };
  if (run.abortReason) out.abortReason = run.abortReason;
  if (run.error) out.error = run.error;
  return out;
}

/** `GET /api/runs?limit=N`: the newest runs, newest first. */
export async function listRuns(
  runs: RunStore,
  query: URLSearchParams,
): Promise<{ status: number; body: unknown }> {
  const raw = query.get('limit');
  const limit = raw === null ? DEFAULT_RUNS_LIMIT : Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_RUNS_LIMIT) {
    return { status: 400, body: { error: `limit must be an integer from 1 to ${MAX_RUNS_LIMIT}` } };
  }
  const list = await runs.list(limit);
  return { status: 200, body: { runs: list.map(runSummary) } };
}

/** `GET /api/runs/<id>` or `/api/runs/latest`: one run's summary. */
export async function getRun(runs: RunStore, id: string): Promise<{ status: number; body: unknown }> {
  const runId = id === 'latest' ? await runs.latestId() : id;
  const run = runId ? await runs.get(runId) : null;
  if (!run) return { status: 404, body: { error: `run ${id} not found` } };
  return { status: 200, body: runSummary(run) };
}
