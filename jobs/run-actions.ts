import type { Job, Queue } from 'bullmq';
import { ConfigError } from '../src/core/config-error.js';
import type { TargetId } from '../src/core/targets.js';
import { deletionSettings } from '../src/pipeline/deletions.js';
import { type Engine, RunVanishedError } from '../src/queue/engine.js';
import { checkFailureRate, maybeFinishRun } from '../src/queue/run-lifecycle.js';
import type { RunKind, RunOptions, RunRecord } from '../src/store/run-record.js';
import { type ConfirmResult, confirmHeldDeletions } from './reconcile-deletions.js';
import * as remove from './remove.js';
import * as scan from './scan.js';
import * as sync from './sync.js';
import * as syncBatch from './sync-batch.js';
import * as handover from './sync-handover.js';

/**
 * What a command or the daemon does with a run, on top of the engine's queues: start it (enqueue its
 * scan), wait for it, abort and drain it, re-drive its dead letters, confirm its held deletions.
 * These know the job bodies (payloads, job ids, settle members), so they live with the jobs, not in
 * src/queue/engine.ts.
 */
import * as steps from './user-steps.js';

export interface StartRunRequest {
  kind: RunKind;
  /** @defaultValue every target of the engine */
  targets?: TargetId[];
  users?: string[];
  limit?: number;
  /** @defaultValue false */
  dryRun?: boolean;
  /** @defaultValue false */
  full?: boolean;
  /** @defaultValue `config.sync.recordPii` */
  showPii?: boolean;
  /** Keep planned requests for `--plan FILE`. @defaultValue false */
  plan?: boolean;
  maxFailureRate?: number;
}

export interface WaitOptions {
  /** @defaultValue 500 */
  pollMs?: number;
  onProgress?: (run: RunRecord) => void;
  /** Abort when failed+rejected exceed this share of a target's outcomes after its first 100. */
  maxFailureRate?: number;
  signal?: AbortSignal;
}

/** Records a run and enqueues its scan; returns the run id. Workers (here or in a daemon) do the rest. */
export async function startRun(
  engine: Pick<Engine, 'targets' | 'config' | 'runs' | 'scanQueue' | 'logger'>,
  req: StartRunRequest,
): Promise<string> {
  const targets = req.targets ?? engine.targets;
  const unknown = targets.filter((t) => !engine.targets.includes(t));
  if (unknown.length)
    throw new ConfigError(
      `--targets: ${unknown.join(', ')} not enabled (set ${unknown.map((t) => `${t.toUpperCase()}_URL`).join(', ')})`,
    );
  if (targets.length === 0)
    throw new ConfigError('no target enabled: set SUNSHINE_URL, ZEPHR_URL or PRELUDE_URL');
  const options: RunOptions = {
    targets,
    dryRun: req.dryRun ?? false,
    full: req.full ?? false,
    showPii: req.showPii ?? engine.config.sync.recordPii,
    plan: req.plan ?? false,
    deletions: deletionSettings(engine.config),
  };
  if (req.users) options.users = req.users;
  if (req.limit !== undefined) options.limit = req.limit;
  if (req.maxFailureRate !== undefined) options.maxFailureRate = req.maxFailureRate;
  const runId = await engine.runs.create(req.kind, options);
  await engine.scanQueue.add(scan.name, { runId }, scan.options(runId, req.kind));
  engine.logger.info(
    { runId, kind: req.kind, targets, dryRun: options.dryRun, full: options.full },
    'run started',
  );
  return runId;
}

/** Asks every worker to drop the run's remaining work; the run ends as `aborted`. */
export async function abortRun(engine: Engine, runId: string, reason: string): Promise<void> {
  await engine.runs.requestAbort(runId, reason);
  engine.logger.warn({ runId, reason }, 'run abort requested');
  await drainRun(engine, runId);
}

/**
 * Removes an aborted run's jobs that have not started, settling each as `skipped`: otherwise each
 * would still wait for a slot of the target's rate budget just to find the run aborted. Jobs already
 * active (locked) are left to finish; they skip themselves at their start check.
 */
export async function drainRun(engine: Engine, runId: string): Promise<number> {
  const DRAIN_PAGE = 1000;
  const DRAIN_STATES = ['prioritized', 'waiting', 'delayed'] as const;
  let removed = 0;
  for (const t of engine.targets) {
    const q = engine.syncQueues[t]!;
    for (;;) {
      // Issue 8.8: every job of the run, however many other jobs sit before it (a page of 1,000
      // holding none of this run's jobs used to end the drain), collected before any is removed so
      // that removals do not shift the pages read.
      const jobs: Job[] = [];
      for (const state of DRAIN_STATES) {
        for (let start = 0; ; start += DRAIN_PAGE) {
          const page = await q.getJobs([state], start, start + DRAIN_PAGE - 1, true);
          for (const j of page) if (j?.data?.runId === runId) jobs.push(j);
          if (page.length < DRAIN_PAGE) break;
        }
      }
      let progress = 0;
      for (const job of jobs) {
        const gone = await job.remove().then(
          () => true,
          () => false,
        );
        if (!gone) continue;
        progress++;
        // A sync batch (jobs/sync-batch.ts) holds several users: each settles `skipped`.
        for (const userId of syncBatch.userIdsOf(job)) {
          await engine.runs.record(runId, {
            settle: steps.settleMember(t, userId),
            counters: [[t, 'skipped', 1]],
          });
        }
      }
      removed += progress;
      if (progress === 0) break; // nothing left (or only jobs another process is removing)
    }
  }
  await maybeFinishRun(engine.runs, runId, engine.alerts);
  return removed;
}

/**
 * Resolves when the run is over: its scan ended and every sync job it enqueued completed or failed
 * for good. Polls the run record, so it works whichever process runs the jobs.
 */
export async function waitForRun(
  engine: Engine,
  runId: string,
  options: WaitOptions = {},
): Promise<RunRecord> {
  const pollMs = options.pollMs ?? 500;
  let drained = false;
  for (;;) {
    options.signal?.throwIfAborted();
    await maybeFinishRun(engine.runs, runId, engine.alerts);
    const run = await engine.runs.get(runId);
    if (!run) {
      // The record is gone (Redis emptied under the run). Waiting would be for ever; jobs still in
      // flight may write a partial record back, which close() removes once they have stopped.
      engine.markVanished(runId);
      engine.logger.error({ runId }, 'run record vanished from Redis');
      throw new RunVanishedError(runId);
    }
    options.onProgress?.(run);
    if (run.status !== 'running') return run;
    const reason = await checkFailureRate(
      engine.runs,
      runId,
      options.maxFailureRate ?? run.options.maxFailureRate,
      engine.alerts,
    );
    if (reason) {
      engine.logger.warn({ runId, reason }, 'run abort requested');
      await drainRun(engine, runId);
    } else if (run.abortReason && !drained) {
      drained = true;
      await drainRun(engine, runId);
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** Without --run, `retry-failed` looks for a batch's dead letters not yet failed in this many newest runs. */
const RECENT_RUNS = 50;

/**
 * Re-drives dead letters (failed sync jobs) as a new `retry` run, optionally only those of one run
 * and/or target. Each failed job is replaced by a job with the same payload in the new run; writes
 * are upserts keyed by the user's identifier, so a replay never creates a duplicate profile.
 *
 * Issue 8.8: every failed job is parsed and validated BEFORE the run is created and marked running;
 * a malformed one (a payload that does not parse, or a target that is not its queue's) is reported
 * in `malformed` and left in the failed set, never blocks the others, and never leaves a run
 * `running` for ever. `runId` names a run that neither exists nor has failed jobs: ConfigError
 * ("no such run").
 */
export async function retryFailed(
  engine: Engine,
  filter: { runId?: string; target?: TargetId } = {},
): Promise<{
  runId: string | null;
  jobs: number;
  malformed: { target: TargetId; jobId: string; error: string }[];
}> {
  const targets = filter.target ? [filter.target] : engine.targets;
  const found: { target: TargetId; job: Job }[] = [];
  for (const t of targets) {
    const q = engine.syncQueues[t];
    if (!q) throw new ConfigError(`--target: ${t} not enabled`);
    for (let start = 0; ; start += 500) {
      const jobs = await q.getFailed(start, start + 499);
      for (const job of jobs)
        if (job && (!filter.runId || job.data?.runId === filter.runId)) found.push({ target: t, job });
      if (jobs.length < 500) break;
    }
  }
  // A batch's dead letters still waiting for a worker: of that run, or without --run of the recent
  // runs that counted a failure (their items name the users).
  const runIds = filter.runId
    ? [filter.runId]
    : (await engine.runs.list(RECENT_RUNS))
        .filter((r) => targets.some((t) => (r.targets[t]?.outcomes.failed ?? 0) > 0))
        .map((r) => r.id);
  for (const id of runIds) found.push(...(await deadLettersNotYetFailed(engine, id, targets, found)));
  if (filter.runId && found.length === 0 && !(await engine.runs.get(filter.runId)))
    throw new ConfigError(`--run: no such run ${filter.runId} (see profile-sync runs)`);

  // Parse and validate first: nothing is created for a job that cannot be replayed.
  const PLACEHOLDER = 'retry-pending';
  type Spec = { name: string; data: { runId: string; userId: string }; opts: Record<string, unknown> };
  const valid: { target: TargetId; job: Job; spec: Spec }[] = [];
  const malformed: { target: TargetId; jobId: string; error: string }[] = [];
  for (const { target: t, job } of found) {
    if (job.name === syncBatch.name) continue; // not a dead letter: its users are (jobs/failed.ts)
    const schema = job.name === remove.name ? remove.payloadSchema : sync.payloadSchema;
    const parsed = schema.safeParse({ ...(job.data ?? {}), runId: PLACEHOLDER });
    const error = !parsed.success
      ? `payload invalid at ${parsed.error.issues.map((i) => i.path.join('.') || '(root)').join(', ')}`
      : parsed.data.target !== t
        ? `payload target is not ${t}`
        : null;
    if (error || !parsed.success) {
      malformed.push({ target: t, jobId: String(job.id), error: error ?? 'payload invalid' });
      engine.logger.warn(
        { target: t, job: job.id, error },
        'retry-failed: malformed dead letter skipped (left in the failed set)',
      );
      continue;
    }
    valid.push({ target: t, job, spec: { name: job.name, data: parsed.data, opts: {} } });
  }
  if (valid.length === 0) return { runId: null, jobs: 0, malformed };

  const involved = [...new Set(valid.map((f) => f.target))];
  const runId = await engine.runs.create('retry', {
    targets: involved,
    dryRun: false,
    full: false,
    showPii: engine.config.sync.recordPii,
    plan: false,
    ...(filter.runId ? { retryOf: filter.runId } : {}),
  });
  try {
    await engine.runs.updateScan(runId, { status: 'running', limited: true });
    for (const t of involved) {
      const mine = valid.filter((f) => f.target === t);
      const specs = mine.map(({ spec }) => {
        const data = { ...spec.data, runId };
        const isRemove = spec.name === remove.name;
        return {
          name: isRemove ? remove.name : sync.name,
          data,
          opts: isRemove
            ? {
                ...remove.options('retry', engine.settings),
                jobId: remove.jobId(t, runId, data.userId),
              }
            : { ...sync.options('retry', engine.settings), jobId: sync.jobId(t, runId, data.userId) },
        };
      });
      await engine.runs.addPending(
        runId,
        specs.map((s) => steps.settleMember(t, s.data.userId)),
      );
      await engine.syncQueues[t]!.addBulk(specs as Parameters<Queue['addBulk']>[0]);
      for (const { job } of mine) await job.remove().catch(() => undefined);
    }
    await engine.runs.updateScan(runId, { status: 'done', records: valid.length });
  } catch (err) {
    // Never a run left `running` for ever: it ends failed, and says why.
    const message = err instanceof Error ? err.message : String(err);
    await engine.runs.updateScan(runId, { status: 'failed', complete: false, error: message });
    await engine.runs.finish(runId, 'failed', { error: message });
    engine.alerts?.runEnded(runId, 'failed');
    throw err;
  }
  await maybeFinishRun(engine.runs, runId, engine.alerts);
  engine.logger.info(
    { runId, jobs: valid.length, malformed: malformed.length, retryOf: filter.runId },
    'dead letters re-driven',
  );
  return { runId, jobs: valid.length, malformed };
}

/**
 * A sync batch's user that failed for good is settled `failed` first, then handed to its own job that
 * fails at once (jobs/sync-handover.ts): for a moment after the run ended that dead letter may still
 * wait for a worker (or for ever, when the process that ran the backfill exited first). `retry-failed
 * --run` right after the run must re-drive it all the same: found by the run's failed items and the
 * users' deterministic job ids, and taken out of the queue like a failed job.
 */
async function deadLettersNotYetFailed(
  engine: Engine,
  runId: string,
  targets: readonly TargetId[],
  already: readonly { job: Job }[],
): Promise<{ target: TargetId; job: Job }[]> {
  const seen = new Set(already.map(({ job }) => String(job.id)));
  const out: { target: TargetId; job: Job }[] = [];
  for (const item of await engine.runs.items(runId)) {
    if (item.outcome !== 'failed' || !targets.includes(item.target)) continue;
    const id = sync.jobId(item.target, runId, item.userId);
    if (seen.has(id)) continue;
    seen.add(id);
    const job = await engine.syncQueues[item.target]?.getJob(id);
    if (job?.name !== handover.name || typeof job.data?.deadLetter !== 'string') continue;
    if ((await job.getState()) === 'failed') continue; // found by getFailed already
    out.push({ target: item.target, job });
  }
  return out;
}

/**
 * `backfill --confirm-deletes RUN`: re-drives the removals the safety brake held in that run (issue 5,
 * jobs/reconcile-deletions.ts), with the deletion policy in force now. Wait with `waitForRun`.
 */
export async function confirmDeletes(engine: Engine, runId: string): Promise<ConfirmResult> {
  return confirmHeldDeletions(engine.jobContext(), runId, deletionSettings(engine.config));
}
