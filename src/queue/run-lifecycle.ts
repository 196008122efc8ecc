import type { RunStatus } from '../pipeline/run-record.js';
import type { RunStore } from '../pipeline/run-store.js';

/**
 * Ends a run once its scan has ended and every sync job it enqueued has settled (completed, or failed
 * for good). Called by whoever may be the last: each sync job after it settles, and the scan job when
 * it ends. Idempotent; any process may call it.
 */
export async function maybeFinishRun(runs: RunStore, runId: string): Promise<RunStatus | null> {
  const s = await runs.completion(runId);
  if (s?.status !== 'running') return null;
  if (!['done', 'failed', 'aborted'].includes(s.scanStatus)) return null;
  if (s.settled < s.enqueued) return null;
  const status: RunStatus = s.scanStatus === 'failed' ? 'failed' : s.abortReason ? 'aborted' : 'completed';
  await runs.finish(runId, status);
  return status;
}
