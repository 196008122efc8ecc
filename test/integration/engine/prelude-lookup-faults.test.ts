import { afterEach, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import type { Engine } from '../../../src/queue/engine.js';
import { createLinkStore } from '../../../src/store/links.js';
import { RedisLayout } from '../../../src/store/redis-layout.js';
import { until } from './e2e-helpers.js';
import { type Harness, inspect, type SourceUserRow, startHarness } from './harness.js';

/**
 * Issue 10, item 4: a batch_lookup that fails is never a silent `unlinked`. It is retried as the read it
 * is (HTTP level); if it still fails, each of its users gets a sync job that looks the user up itself,
 * under the job's retries, and ends in the dead letters that `retry-failed` re-drives; a refusal every
 * request would meet (401) stops Prelude for the run at once. Faults are injected on the sandbox's
 * batch_lookup route only.
 */
const LOOKUP = 'POST /v2/session/apps/:appID/users/batch_lookup';
const PATCH = 'PATCH /v2/session/apps/:appID/users/:userID/profile';

async function backfill(engine: Engine) {
  return runActions.waitForRun(
    engine,
    await runActions.startRun(engine, { kind: 'backfill', targets: ['prelude'] }),
    { pollMs: 50 },
  );
}

/** Source users Prelude knows by external_id (the sandbox's own state). */
async function knownIds(h: Harness): Promise<Set<string>> {
  const { users } = await inspect<{ users: { external_id?: string }[] }>(h.sandbox.urls.prelude, 'users');
  return new Set(users.map((u) => u.external_id).filter((x): x is string => !!x));
}

const byStatus = (h: Harness, route: string) => h.sandbox.sims.prelude.counters().byRoute[route] ?? {};

describe('prelude: a failing batch_lookup (issue 10.4)', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('503 on all three tries of one batch: its users are looked up by their own jobs, every known user written', async () => {
    h = await startHarness({ label: 'lookup-503', sandbox: { users: 200 } });
    // The scan's first batch_lookup and its two HTTP-level retries fail; everything after succeeds.
    h.sandbox.sims.prelude.setFaults([{ kind: 'status', status: 503, times: 3, match: { route: LOOKUP } }]);
    const engine = await h.engine({ only: ['prelude'] });
    await engine.startWorkers({ concurrency: 4 });
    const run = await backfill(engine);
    const p = run.targets.prelude!;
    const known = await knownIds(h);
    const source = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    const expected = source.filter((s) => known.has(s.id)).length;
    expect(p.outcomes.failed).toBe(0);
    expect(p.outcomes.created + p.outcomes.rejected).toBe(expected);
    expect(p.outcomes.unlinked).toBe(200 - expected);
    expect(byStatus(h, LOOKUP)['503']).toBe(3);
    // Second batch in one request, then one lookup per user of the failed batch (100).
    expect(byStatus(h, LOOKUP)['200']).toBe(1 + 100);
    expect(p.lookups).toBe(3 + 1 + 100);
    const links = await createLinkStore(h.redis, h.prefix).getMany(source.map((s) => s.id));
    expect(links.size).toBe(expected);
    expect(byStatus(h, PATCH)['204']).toBe(p.outcomes.created);
  }, 60_000);

  it('503 for good: no user counted unlinked; each lands in the dead letters with the lookup error; retry-failed links and writes them', async () => {
    h = await startHarness({
      label: 'lookup-down',
      sandbox: { users: 20 },
      env: { SYNC_ATTEMPTS: '2', SYNC_ATTEMPTS_UNKNOWN: '2' },
    });
    h.sandbox.sims.prelude.setFaults([{ kind: 'status', status: 503, match: { route: LOOKUP } }]);
    const engine = await h.engine({ only: ['prelude'] });
    await engine.startWorkers({ concurrency: 4 });
    const run = await backfill(engine);
    const p = run.targets.prelude!;
    expect(p.outcomes).toMatchObject({ failed: 20, unlinked: 0, created: 0 });
    expect(byStatus(h, PATCH)).toEqual({});
    const items = await engine.runs.items(run.id);
    for (const i of items) {
      expect(i.outcome).toBe('failed');
      expect(i.lastError).toMatchObject({ code: 'E_TRANSIENT', status: 503 });
      expect(String(i.lastError?.message)).toContain('batch_lookup');
    }
    // Nobody was remembered unlinked (they would wait UNLINKED_RECHECK, 24 h, without a request).
    expect(await h.redis.hlen(new RedisLayout(h.prefix).unlinked('prelude'))).toBe(0);
    const dead = await until('the dead letters', async () => {
      const f = await engine.syncQueues.prelude!.getFailed(0, 100);
      return f.length === 20 ? f : undefined;
    });
    expect(
      dead.every((j) => j.data.lookup === true && /^E_TRANSIENT: .*batch_lookup/.test(j.failedReason)),
    ).toBe(true);

    // Prelude is back: retry-failed re-drives the 20 jobs; each looks its user up and writes.
    h.sandbox.sims.prelude.setFaults([]);
    const retry = await runActions.retryFailed(engine, { runId: run.id });
    expect(retry.jobs).toBe(20);
    const redo = await runActions.waitForRun(engine, retry.runId!, { pollMs: 50 });
    const known = await knownIds(h);
    const source = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    const expected = source.filter((s) => known.has(s.id)).length;
    expect(redo.targets.prelude!.outcomes).toMatchObject({
      failed: 0,
      created: expected,
      unlinked: 20 - expected,
    });
    expect((await createLinkStore(h.redis, h.prefix).getMany(source.map((s) => s.id))).size).toBe(expected);
    expect(await engine.syncQueues.prelude!.getFailedCount()).toBe(0);
  }, 90_000);

  it('401 on the lookup stops Prelude for the run after that one request; the jobs fail at the gate into the dead letters', async () => {
    h = await startHarness({ label: 'lookup-401', sandbox: { users: 50 } });
    h.sandbox.sims.prelude.setFaults([{ kind: 'status', status: 401, match: { route: LOOKUP } }]);
    const engine = await h.engine({ only: ['prelude'] });
    await engine.startWorkers({ concurrency: 4 });
    const run = await backfill(engine);
    const p = run.targets.prelude!;
    expect(p.stopped).toMatch(/E_AUTH 401 .*batch_lookup/);
    expect(p.outcomes).toMatchObject({ failed: 50, unlinked: 0 });
    expect(h.sandbox.sims.prelude.counters().total).toBe(1);
    expect(await engine.syncQueues.prelude!.getFailedCount()).toBe(50);
  }, 60_000);
});
