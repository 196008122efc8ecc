import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import * as runActions from '../../jobs/run-actions.js';
import * as scan from '../../jobs/scan.js';
import { sourceUserSchema } from '../connectors/source/record.js';
import { isSyncError } from '../core/errors.js';
import { userKey } from '../core/hashing.js';
import type { Engine } from '../queue/engine.js';
import { PENDING_PREFIX, UserSyncRequests } from '../store/user-sync-requests.js';

/**
 * Issue 12.2: "sync this user now", for `POST /users/{id}/sync` (an identity service's change webhook)
 * and the dashboard's "sync now" button. Starts a `single-user` run, whose jobs take the single-user
 * lane (PRIORITY 1 in src/queue/context.ts: ahead of scheduled work and any backfill).
 *
 * Repeats collapse: a request for a user whose previous request, less than {@link USER_SYNC_COLLAPSE_MS}
 * ago, started a run that has NOT yet read the user from the source (its scan is still queued) answers
 * 202 with that run's id and `collapsed: true`: that run will read the change this request announces.
 * Once the scan has read the user, a repeat starts a new run, because its change may be newer than
 * what was read. The marker is `{p}:user-sync:<userKey>` (SET NX PX semantics via compare-and-set,
 * src/store/user-sync-requests.ts), so two daemon replicas behind one Service start one run.
 */

/**
 * The collapse window, fixed: 5 s. A change webhook fires a burst (one event per changed field, or
 * redeliveries) within a second or two; a longer window would collapse nothing more, because a run
 * absorbs repeats only until its scan starts, which the single-user lane makes well under a second on
 * a working daemon. Its only other role is to bound how long a marker outlives a run nobody picked up.
 */
export const USER_SYNC_COLLAPSE_MS = 5_000;

/** What the request needs of the engine: enough to start a run and to ask the source. */
export type UserSyncEngine = Pick<
  Engine,
  'config' | 'connection' | 'layout' | 'runs' | 'scanQueue' | 'targets' | 'logger' | 'source'
>;

export interface UserSyncAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** How long a request waits for a concurrent one that is creating the run (normally a few ms). */
const PENDING_WAIT_MS = 2_000;

/** Validates the id, asks the source, then starts (or joins) the user's single-user run. */
export async function requestUserSync(engine: UserSyncEngine, userId: string): Promise<UserSyncAnswer> {
  const valid = sourceUserSchema.shape.id.safeParse(userId);
  if (!valid.success)
    return { status: 400, body: { error: `invalid user id: ${valid.error.issues[0]?.message}` } };
  const log = engine.logger.child({ component: 'user-sync', userId });
  const key = userKey(userId);
  const markers = new UserSyncRequests(engine.connection, engine.layout);

  let known = false;
  for (let round = 0; round < 5; round++) {
    let current = await markers.current(key);
    if (current?.startsWith(PENDING_PREFIX)) current = await waitForRunId(markers, key, current);
    if (current && !current.startsWith(PENDING_PREFIX)) {
      const run = await engine.runs.get(current);
      if (run?.status === 'running' && run.scan.status === 'pending') {
        log.info({ runId: current }, 'user sync request collapsed into a queued run');
        return accepted(current, userId, true);
      }
    } else if (current) {
      continue; // still pending: another request is creating the run; look again
    }
    if (!known) {
      const missing = await unknownUser(engine, userId);
      if (missing) return missing;
      known = true;
    }
    const token = `${PENDING_PREFIX}${randomUUID()}`;
    if (!(await markers.swap(key, current, token, USER_SYNC_COLLAPSE_MS))) continue; // lost a race
    let runId: string;
    try {
      runId = await runActions.startRun(engine, { kind: 'single-user', users: [userId] });
    } catch (err) {
      await markers.swap(key, token, null).catch(() => undefined);
      throw err;
    }
    await markers.swap(key, token, runId); // keeps the window that started with the claim
    log.info({ runId }, 'user sync requested');
    return accepted(runId, userId, false);
  }
  return {
    status: 503,
    body: { error: 'concurrent sync requests for this user kept conflicting; retry in a second' },
  };
}

function accepted(runId: string, userId: string, collapsed: boolean): UserSyncAnswer {
  return {
    status: 202,
    body: {
      runId,
      jobId: scan.jobId(runId),
      userId,
      collapsed,
      message: collapsed
        ? `collapsed into run ${runId}, requested less than ${USER_SYNC_COLLAPSE_MS / 1000} s ago and not started yet`
        : `run ${runId} queued in the single-user lane`,
      run: `/api/runs/${encodeURIComponent(runId)}`,
    },
  };
}

/** 404 when the source does not know the user; 502 when the source cannot say. Null: known. */
async function unknownUser(engine: UserSyncEngine, userId: string): Promise<UserSyncAnswer | null> {
  try {
    const rec = await engine.source().getUser(userId);
    if (rec === null) return { status: 404, body: { error: 'user not found in the source', userId } };
    return null;
  } catch (err) {
    const code = isSyncError(err) ? err.code : 'E_UNKNOWN';
    engine.logger.warn({ userId, code }, 'user sync request: the source could not be asked');
    return { status: 502, body: { error: `the source could not be asked about the user (${code})` } };
  }
}

/** Polls until the marker holds a run id, disappears, or the wait ends; returns what it holds then. */
async function waitForRunId(markers: UserSyncRequests, key: string, seen: string): Promise<string | null> {
  const deadline = Date.now() + PENDING_WAIT_MS;
  let current: string | null = seen;
  while (current?.startsWith(PENDING_PREFIX) && Date.now() < deadline) {
    await sleep(20);
    current = await markers.current(key);
  }
  return current;
}
