import type { Job } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import { closeConnectors, createTargetConnectors } from '../../../src/connectors/registry.js';
import { createSourceConnector } from '../../../src/connectors/source/connector.js';
import type { SourceConnector, TargetConnector } from '../../../src/connectors/types.js';
import type { Change } from '../../../src/core/types.js';
import { createLogger } from '../../../src/log.js';
import type { Engine } from '../../../src/queue/engine.js';
import { type Harness, inspect, type SourceUserRow, startHarness } from './harness.js';

const logger = createLogger({ level: 'silent' });

/**
 * The workers that will die: a 1 s lock, so their held job is stalled a second after they stop; and
 * a short stalled interval, because BullMQ's stalled check runs at most once per `stalledInterval` of
 * whichever worker ran it last (a `stalled-check` key with that TTL) across all workers.
 */
const DYING = { lockDurationMs: 1000, stalledIntervalMs: 200 };

/** A promise the test releases (rejects) at the end, so the stuck handler can unwind. */
function hangUntilReleased(): { hang: Promise<never>; release: () => void } {
  let release!: () => void;
  const hang = new Promise<never>((_, reject) => {
    release = () => reject(new Error('released by the test'));
  });
  hang.catch(() => undefined);
  return { hang, release };
}

async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * "The worker died holding the job": stop its lock renewal and its processing without releasing the
 * job (BullMQ's forced close, as its own stalled-job tests do). The job stays active with a lock that
 * expires after the short `lockDurationMs`, so another worker's stalled check finds it.
 */
/** A second process whose workers take stalled jobs at once and fail them for good (maxStalledCount 0). */
async function rescue(h: Harness): Promise<Engine> {
  const rescuer = await h.engine({ only: ['zephr'] });
  await rescuer.startWorkers({ stalledIntervalMs: 200, maxStalledCount: 0 });
  return rescuer;
}

/** The run once it ended (20 s at most). */
function settled(engine: Engine, runId: string) {
  return runActions.waitForRun(engine, runId, { pollMs: 100, signal: AbortSignal.timeout(20_000) });
}

async function killWorkers(engine: Engine): Promise<void> {
  await Promise.all(engine.runningWorkers.map((w) => w.close(true)));
}

// Bug: a job that BullMQ fails for stalling (more than maxStalledCount) never runs its handler again
// (BullMQ 6 fails it on the next pickup without calling the processor), so its (run, target, user)
// never settled: the run stayed `running` for ever and every later scheduled tick was `skipped`.
describe('engine: jobs failed by BullMQ for stalling settle their run', () => {
  let h: Harness | undefined;
  const releases: (() => void)[] = [];
  afterEach(async () => {
    for (const r of releases.splice(0)) r();
    await h?.close();
    h = undefined;
  });

  it('stalled_sync_job_settles_failed: the run completes with that user failed (E_STALLED) and the job in the dead letters', async () => {
    // One job per user (SYNC_BATCH_SIZE=1): the single job's stall; a batch's is the next test.
    h = await startHarness({ label: 'stalled-sync', sandbox: { users: 6 }, env: { SYNC_BATCH_SIZE: '1' } });
    const users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    const victim = users[0]!.id;
    const real = createTargetConnectors(h.config, { logger }, { only: ['zephr'] }).zephr!;
    const { hang, release } = hangUntilReleased();
    releases.push(release, () => void closeConnectors({ zephr: real }));
    let victimStarted = false;
    const zephr: TargetConnector = Object.assign(Object.create(real) as TargetConnector, {
      write: (change: Change) => {
        if (change.userId !== victim) return real.write(change);
        victimStarted = true;
        return hang;
      },
    });

    const doomed = await h.engine({ only: ['zephr'], targets: { zephr } });
    await doomed.startWorkers({ ...DYING, concurrency: 4 });
    const runId = await runActions.startRun(doomed, { kind: 'scheduled', targets: ['zephr'] });
    // Every other user settles and its job is completed in BullMQ (a job settles inside its handler,
    // just before BullMQ moves it: killed in between, it would stall too); the victim's job hangs.
    await until('the other users to settle', async () => {
      const c = await doomed.runs.completion(runId);
      if (!(victimStarted && c?.scanStatus === 'done' && c.settled === c.enqueued - 1)) return false;
      return (await doomed.syncQueues.zephr!.getCompletedCount()) === c.enqueued - 1;
    });
    await killWorkers(doomed);

    const rescuer = await rescue(h);
    const run = await settled(rescuer, runId);

    expect(run.status).toBe('completed');
    const o = run.targets.zephr!.outcomes;
    expect(o.failed).toBe(1);
    expect(o.created + o.rejected).toBe(users.length - 1);
    const failed = (await rescuer.runs.items(runId)).filter((i) => i.outcome === 'failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ userId: victim, target: 'zephr', lastError: { code: 'E_STALLED' } });
    expect(String(failed[0]!.lastError!.message)).toContain('stalled more than allowable limit');
    // It is a dead letter like any other failure: retry-failed can re-drive it.
    const dead = (await rescuer.syncQueues.zephr!.getFailed()) as Job[];
    expect(dead.map((j) => j.data.userId)).toEqual([victim]);
    const retry = await runActions.retryFailed(rescuer, { runId });
    expect(retry.jobs).toBe(1);
    const again = await settled(rescuer, retry.runId!);
    expect(again.status).toBe('completed');
    expect(again.targets.zephr!.outcomes.failed).toBe(0);
  });

  it('stalled_sync_batch_settles_failed: a batch that stalled too often settles its unsettled users failed (E_STALLED), each a dead letter retry-failed re-drives', async () => {
    h = await startHarness({ label: 'stalled-batch', sandbox: { users: 6 } });
    const users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    const real = createTargetConnectors(h.config, { logger }, { only: ['zephr'] }).zephr!;
    const { hang, release } = hangUntilReleased();
    releases.push(release, () => void closeConnectors({ zephr: real }));
    // The batch runs its users in source order: the third one hangs, two settled before it.
    const order: string[] = [];
    const zephr: TargetConnector = Object.assign(Object.create(real) as TargetConnector, {
      write: (change: Change) => {
        order.push(change.userId);
        return order.length === 3 ? hang : real.write(change);
      },
    });

    const doomed = await h.engine({ only: ['zephr'], targets: { zephr } });
    await doomed.startWorkers({ ...DYING, concurrency: 4 });
    const runId = await runActions.startRun(doomed, { kind: 'scheduled', targets: ['zephr'] });
    await until('two users to settle and the third to hang', async () => {
      const c = await doomed.runs.completion(runId);
      return order.length === 3 && c?.scanStatus === 'done' && c.settled === 2;
    });
    expect(await doomed.syncQueues.zephr!.getActiveCount()).toBe(1); // one job holds all six users
    await killWorkers(doomed);

    const rescuer = await rescue(h);
    const run = await settled(rescuer, runId);

    expect(run.status).toBe('completed');
    expect(run.targets.zephr!.outcomes).toMatchObject({ created: 2, failed: 4 });
    const failed = (await rescuer.runs.items(runId)).filter((i) => i.outcome === 'failed');
    expect(failed.map((i) => i.userId).sort()).toEqual(
      users
        .map((u) => u.id)
        .filter((id) => !order.slice(0, 2).includes(id))
        .sort(),
    );
    for (const f of failed) expect(f.lastError).toMatchObject({ code: 'E_STALLED' });
    // Each a dead letter of its own (the batch itself is none): retry-failed re-drives the four.
    const dead = ((await rescuer.syncQueues.zephr!.getFailed()) as Job[]).filter(
      (j) => j.name !== 'sync-batch',
    );
    expect(dead.map((j) => j.data.userId).sort()).toEqual(failed.map((i) => i.userId).sort());
    const retry = await runActions.retryFailed(rescuer, { runId });
    expect(retry).toMatchObject({ jobs: 4, malformed: [] });
    const again = await settled(rescuer, retry.runId!);
    expect(again.status).toBe('completed');
    expect(again.targets.zephr!.outcomes).toMatchObject({ created: 4, failed: 0 });
  });

  it('stalled_scan_job_fails_run: a scan failed for stalling ends the run failed and incomplete', async () => {
    h = await startHarness({ label: 'stalled-scan', sandbox: { users: 6 } });
    const realSource = createSourceConnector({ config: h.config.source, http: h.config.http }, { logger });
    const { hang, release } = hangUntilReleased();
    releases.push(release);
    releases.push(() => void realSource.close());
    let scanning = false;
    const source: SourceConnector = Object.assign(Object.create(realSource) as SourceConnector, {
      // biome-ignore lint/correctness/useYield: it never gets to yield, like a worker that died mid-page
      scan: async function* () {
        scanning = true;
        await hang;
      },
    });

    const doomed = await h.engine({ only: ['zephr'], source });
    await doomed.startWorkers(DYING);
    const runId = await runActions.startRun(doomed, { kind: 'scheduled', targets: ['zephr'] });
    await until('the scan to start', async () => scanning);
    await killWorkers(doomed);

    const rescuer = await rescue(h);
    const run = await settled(rescuer, runId);

    expect(run.status).toBe('failed');
    expect(run.scan).toMatchObject({ status: 'failed', complete: false });
    expect(run.scan.error).toContain('stalled more than allowable limit');
    // The next scheduled run is not held up by it.
    const next = await runActions.waitForRun(
      rescuer,
      await runActions.startRun(rescuer, { kind: 'scheduled', targets: ['zephr'] }),
      {
        pollMs: 100,
        signal: AbortSignal.timeout(20_000),
      },
    );
    expect(next.status).toBe('completed');
  });
});
