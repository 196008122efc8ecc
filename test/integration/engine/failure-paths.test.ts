import { afterEach, describe, expect, it } from 'vitest';
import { JOBS } from '../../../jobs/index.js';
import * as runActions from '../../../jobs/run-actions.js';
import { loadConfig } from '../../../src/config/load.js';
import { createTargetConnectors } from '../../../src/connectors/registry.js';
import type { TargetConnector } from '../../../src/connectors/types.js';
import { createLogger } from '../../../src/log.js';
import { Engine } from '../../../src/queue/engine.js';
import { preludeKnown, preludeUsr, startProxy, sunshineExternalIds, until } from './e2e-helpers.js';
import { type Harness, inspect, type SourceUserRow, startHarness } from './harness.js';

// Issue 8.16: failure paths that had never been run end to end (real Redis under a random prefix,
// the loopback sandbox, the production engine and jobs).
const PATCH_ROUTE = 'PATCH /v2/session/apps/:appID/users/:userID/profile';
const silent = () => createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

describe('engine failure paths, end to end (issue 8.16)', () => {
  let h: Harness | undefined;
  const extra: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const e of extra.splice(0)) await e.close();
    await h?.close();
    h = undefined;
  });

  it('a transient error on every try exhausts SYNC_ATTEMPTS, lands in the dead letters, and retry-failed re-drives it without a duplicate', async () => {
    h = await startHarness({
      label: 'deadletter',
      sandbox: { users: 12 },
      env: { SYNC_ATTEMPTS: '3', SYNC_ATTEMPTS_UNKNOWN: '2' },
    });
    const users = (await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users')).map((u) => u.id);
    const { known } = await preludeKnown(h, users);
    const victim = known.find((id) => /^user-\d+$/.test(id))!;
    // Prelude answers 503 to every write of this one user (PATCH is not idempotent: no HTTP-level
    // retry, each job attempt is exactly one request).
    const victimUsr = await preludeUsr(h, victim); // PATCHes go to Prelude's own id (found by external_id)
    h.sandbox.sims.prelude.setFaults([
      { kind: 'status', status: 503, rate: 1, match: { method: 'PATCH', pathRegex: `/users/${victimUsr}/` } },
    ]);
    const engine = await h.engine({ only: ['prelude'] });
    await engine.startWorkers({ concurrency: 4 });
    const run = await runActions.waitForRun(engine, await runActions.startRun(engine, { kind: 'backfill' }), {
      pollMs: 50,
    });
    const p = run.targets.prelude!;
    expect(p.outcomes.failed).toBe(1);
    expect(p.outcomes.created).toBe(known.length - 1);
    expect(p.retries).toBe(2);
    const item = (await engine.runs.items(run.id)).find(
      (i) => i.userId === victim && i.target === 'prelude',
    )!;
    expect(item.outcome).toBe('failed');
    expect(item.attempts).toBe(3);
    expect(item.tries?.map((t) => t.error.code)).toEqual(['E_TRANSIENT', 'E_TRANSIENT']);
    expect(item.lastError?.code).toBe('E_TRANSIENT');
    expect(item.lastError?.status).toBe(503);
    // Exactly three PATCHes reached Prelude for that user: one per attempt.
    const patches = h.sandbox.sims.prelude.counters().byRoute[PATCH_ROUTE]!;
    expect(patches['503']).toBe(3);
    // The dead letter: BullMQ's failed set, with the class in the reason.
    const failed = await until('the dead letter', async () => {
      const f = await engine.syncQueues.prelude!.getFailed(0, 10);
      return f.length === 1 ? f : undefined;
    });
    expect(failed[0]!.data.userId).toBe(victim);
    // Its first try was in a sync batch, which handed the user over to its own job (the dead letter):
    // that job's tries and the batch's make the three configured (jobs/sync-handover.ts).
    expect(failed[0]!.name).toBe('sync-handover');
    expect(failed[0]!.attemptsMade + failed[0]!.data.tried).toBe(3);
    expect(failed[0]!.failedReason).toMatch(/^E_TRANSIENT: /);

    // The vendor recovers; retry-failed re-drives the dead letter as a new run.
    h.sandbox.sims.prelude.setFaults([]);
    const retry = await runActions.retryFailed(engine, { runId: run.id });
    expect(retry.jobs).toBe(1);
    const redo = await runActions.waitForRun(engine, retry.runId!, { pollMs: 50 });
    expect(redo.kind).toBe('retry');
    expect(redo.targets.prelude!.outcomes.created).toBe(1);
    expect(await engine.syncQueues.prelude!.getFailedCount()).toBe(0);
    // Every user Prelude knows now has a profile in its Prelude user (by external_id), exactly once.
    const { users: inPrelude } = await inspect<{
      users: { external_id?: string; profile: Record<string, string> }[];
    }>(h.sandbox.urls.prelude, 'users');
    const written = inPrelude.filter((u) => u.external_id && Object.keys(u.profile).length > 0);
    expect(written.map((u) => u.external_id).sort()).toEqual([...known].sort());
    expect((await runActions.retryFailed(engine, { runId: run.id })).jobs).toBe(0);
  }, 60_000);

  it('an unclassified error (a bug, not a vendor answer) is retried SYNC_ATTEMPTS_UNKNOWN times, then dead-lettered', async () => {
    h = await startHarness({
      label: 'unknownerr',
      sandbox: { users: 6 },
      env: { SYNC_ATTEMPTS: '5', SYNC_ATTEMPTS_UNKNOWN: '2' },
    });
    const victim = 'user-000002';
    // The real Zephr connector, except that writing this user throws a plain TypeError.
    const real = createTargetConnectors(h.config, { logger: silent() }, { only: ['zephr'] }).zephr!;
    let thrown = 0;
    const zephr = new Proxy(real, {
      get(t, key, recv) {
        if (key === 'write')
          return (change: Parameters<TargetConnector['write']>[0]) => {
            if (change.userId === victim) {
              thrown++;
              throw new TypeError('cannot read properties of undefined (a bug)');
            }
            return t.write(change);
          };
        const v = Reflect.get(t, key, recv);
        return typeof v === 'function' ? v.bind(t) : v;
      },
    }) as TargetConnector;
    const engine = await h.engine({ only: ['zephr'], targets: { zephr } });
    extra.push({ close: () => real.close() });
    await engine.startWorkers({ concurrency: 2 });
    const run = await runActions.waitForRun(engine, await runActions.startRun(engine, { kind: 'backfill' }), {
      pollMs: 50,
    });
    const z = run.targets.zephr!;
    expect(z.outcomes.created).toBe(5);
    expect(z.outcomes.failed).toBe(1);
    expect(thrown).toBe(2);
    const item = (await engine.runs.items(run.id)).find((i) => i.userId === victim)!;
    expect(item.attempts).toBe(2);
    expect(item.lastError).toMatchObject({ code: 'E_UNKNOWN', message: expect.stringContaining('a bug') });
    const failed = await until('the dead letter', async () => {
      const f = await engine.syncQueues.zephr!.getFailed(0, 10);
      return f.length === 1 ? f : undefined;
    });
    expect(failed[0]!.attemptsMade + failed[0]!.data.tried).toBe(2); // a batch's try, then its own
    expect(failed[0]!.failedReason).toMatch(/^E_UNKNOWN: /);
  }, 60_000);

  it('the source answers 401 mid-scan: the run fails saying so, and nobody is concluded gone', async () => {
    h = await startHarness({
      label: 'src401',
      sandbox: { users: 100 },
      env: {
        SOURCE_PAGE_SIZE: '20',
        SUNSHINE_ON_DELETE: 'delete',
        ZEPHR_ON_DELETE: 'clear',
        MAX_DELETE_RATE: '1',
        MAX_DELETES: '100000',
      },
    });
    const first = await h.engine({ only: ['sunshine', 'zephr'] });
    await first.startWorkers({ concurrency: 8 });
    const base = await runActions.waitForRun(first, await runActions.startRun(first, { kind: 'backfill' }), {
      pollMs: 50,
    });
    expect(base.status).toBe('completed');
    expect(base.targets.sunshine!.outcomes.created).toBe(100);
    await first.close();

    // The credentials are revoked after the first page: every later list request answers 401.
    let pagesServed = 0;
    const proxy = await startProxy(h.sandbox.urls.source, (req) => {
      const path = (req.url ?? '').split('?')[0];
      if (req.method !== 'GET' || path !== '/user') return undefined;
      pagesServed++;
      if (pagesServed === 1) return undefined;
      return { status: 401, body: { type: 'AuthenticationException', message: 'Unauthorized' } };
    });
    extra.push(proxy);
    const config = loadConfig({ ...h.env, SOURCE_URL: proxy.url });
    const engine = await Engine.create({ jobs: JOBS, config, only: ['sunshine', 'zephr'], logger: silent() });
    extra.push(engine);
    await engine.startWorkers({ concurrency: 8 });
    const run = await runActions.waitForRun(engine, await runActions.startRun(engine, { kind: 'backfill' }), {
      pollMs: 50,
    });
    expect(run.status).toBe('failed');
    expect(run.scan.status).toBe('failed');
    expect(run.scan.complete).toBe(false);
    expect(run.scan.error).toMatch(/401/);
    // An auth error is not retried by the scan: the pages requested ahead (SOURCE_READ_AHEAD, 4) are
    // refused once each, and none is asked for again (three attempts would make it 12).
    expect(config.source.readAhead).toBe(4);
    expect(proxy.answered).toBe(4);
    for (const t of ['sunshine', 'zephr'] as const) {
      expect(run.targets[t]!.outcomes.removed).toBe(0);
      expect(run.targets[t]!.outcomes.orphaned).toBe(0);
    }
    expect((await sunshineExternalIds(h)).length).toBe(100);
    const zephr = await inspect<unknown[]>(h.sandbox.urls.zephr, 'profiles');
    expect(zephr.length).toBe(100);
  }, 90_000);

  for (const [label, setup, code] of [
    [
      'app_not_found (PRELUDE_APP_ID names no app)',
      (h: Harness) =>
        fetch(`${h.sandbox.urls.prelude}/__sandbox/apps/${h.env.PRELUDE_APP_ID}`, { method: 'DELETE' }),
      'app_not_found',
    ],
    [
      'session_disabled (session management off for the app)',
      (h: Harness) =>
        fetch(`${h.sandbox.urls.prelude}/__sandbox/apps/${h.env.PRELUDE_APP_ID}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ sessionEnabled: false }),
        }),
      'session_disabled',
    ],
  ] as const) {
    it(`Prelude ${label} stops the target after a few requests and the run says why`, async () => {
      h = await startHarness({ label: `prelude-${code}`, sandbox: { users: 80 } });
      const res = await setup(h);
      expect(res.ok).toBe(true);
      const engine = await h.engine({ only: ['prelude'] });
      await engine.startWorkers({ concurrency: 4 });
      const run = await runActions.waitForRun(
        engine,
        await runActions.startRun(engine, { kind: 'backfill' }),
        { pollMs: 50 },
      );
      const p = run.targets.prelude!;
      expect(p.stopped).toContain(code);
      expect(p.stopped).toContain(code === 'app_not_found' ? 'PRELUDE_APP_ID' : 'enable it');
      expect(p.outcomes.failed).toBe(80);
      // Only the jobs already in flight when the first refusal came back reached Prelude.
      const sent = h.sandbox.sims.prelude.counters().total;
      expect(sent).toBeGreaterThanOrEqual(1);
      expect(sent).toBeLessThanOrEqual(4);
      expect(p.requests).toBe(sent);
      console.info(`prelude ${code}: stopped after ${sent} request(s) for 80 users (concurrency 4)`);
    }, 60_000);
  }

  it('a request hanging past HTTP_HEADERS_TIMEOUT_MS is retried: a one-off hang succeeds, a permanent hang dead-letters', async () => {
    h = await startHarness({
      label: 'hang',
      sandbox: { users: 10 },
      // Short enough for a fast test; long enough that an answered request never reaches it
      // (a hang always does, whatever the machine's speed).
      env: { HTTP_HEADERS_TIMEOUT_MS: '1000', SYNC_ATTEMPTS: '3' },
    });
    const users = (await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users')).map((u) => u.id);
    const { known } = await preludeKnown(h, users);
    const [once, always] = known.filter((id) => /^user-\d+$/.test(id)) as [string, string];
    const [onceUsr, alwaysUsr] = [await preludeUsr(h, once), await preludeUsr(h, always)];
    h.sandbox.sims.prelude.setFaults([
      { kind: 'hang', times: 1, match: { method: 'PATCH', pathRegex: `/users/${onceUsr}/` } },
      { kind: 'hang', match: { method: 'PATCH', pathRegex: `/users/${alwaysUsr}/` } },
    ]);
    const engine = await h.engine({ only: ['prelude'] });
    await engine.startWorkers({ concurrency: 4 });
    const run = await runActions.waitForRun(engine, await runActions.startRun(engine, { kind: 'backfill' }), {
      pollMs: 50,
    });
    const p = run.targets.prelude!;
    expect(p.outcomes.created).toBe(known.length - 1);
    expect(p.outcomes.failed).toBe(1);
    const items = await engine.runs.items(run.id);
    const a = items.find((i) => i.userId === once)!;
    expect(a.outcome).toBe('created');
    expect(a.attempts).toBeGreaterThanOrEqual(2);
    expect(a.tries![0]!.error).toMatchObject({ code: 'E_TRANSIENT', vendorCode: 'UND_ERR_HEADERS_TIMEOUT' });
    const b = items.find((i) => i.userId === always)!;
    expect(b.outcome).toBe('failed');
    expect(b.attempts).toBe(3);
    expect(b.lastError).toMatchObject({ code: 'E_TRANSIENT', vendorCode: 'UND_ERR_HEADERS_TIMEOUT' });
    const failed = await until('the dead letter', async () => {
      const f = await engine.syncQueues.prelude!.getFailed(0, 10);
      return f.length === 1 ? f : undefined;
    });
    expect(failed[0]!.data.userId).toBe(always);
  }, 60_000);
});
