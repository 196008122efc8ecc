import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import type { Engine } from '../../../src/queue/engine.js';
import { type AlertReceiver, startAlertReceiver } from '../../helpers/alert-receiver.js';
import { CLI, runCli } from '../../helpers/cli.js';
import { until } from '../engine/e2e-helpers.js';
import { type Harness, inspect, inspectPost, type SourceUserRow, startHarness } from '../engine/harness.js';

const FAST = { retryDelaysMs: [20, 20, 20, 20], closeTimeoutMs: 5_000 };
const PUBLIC = 'https://ops.example.test';

/** Every secret the harness's config holds, plus the webhook URL's own path token. */
function secretsOf(h: Harness, rx: AlertReceiver, extra: string[] = []): string[] {
  const names = [
    'SOURCE_PASSWORD',
    'SOURCE_TOKEN',
    'SUNSHINE_API_TOKEN',
    'ZEPHR_JWT_SECRET',
    'PRELUDE_API_KEY',
  ];
  return [
    ...names.map((n) => h.env[n]).filter((v): v is string => !!v && v.length >= 4),
    ...extra,
    new URL(rx.url).pathname,
  ];
}

/** No secret and no source email in any alert body sent. */
async function expectClean(h: Harness, rx: AlertReceiver, extra: string[] = []): Promise<void> {
  const bodies = rx.requests.map((r) => r.text).join('\n');
  for (const s of secretsOf(h, rx, extra)) expect(bodies).not.toContain(s);
  const users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
  for (const u of users) if (u.email) expect(bodies.toLowerCase()).not.toContain(u.email.toLowerCase());
}

describe('operations alerts (issue 12.3) against a loopback receiver', () => {
  let h: Harness | undefined;
  let rx: AlertReceiver | undefined;
  afterEach(async () => {
    await h?.close();
    await rx?.close();
    h = undefined;
    rx = undefined;
  });

  async function setup(label: string, env: Record<string, string>, users: number, statuses?: number[]) {
    rx = await startAlertReceiver(statuses ? { statuses } : {});
    h = await startHarness({
      label,
      sandbox: { users },
      env: { ALERT_WEBHOOK_URL: rx.url, OPS_PUBLIC_URL: PUBLIC, ...env },
    });
    return { rx, h };
  }

  it('an aborted run: one run_aborted alert with run, counts and link, delivered on the third try after two 500s; a replay (same or another replica) sends nothing more', async () => {
    const { rx, h } = await setup(
      'alert-abort',
      { PRELUDE_RATE_LIMIT: '5', PROFILE_SYNC_TEST_RATE_WINDOW_MS: '1000', RATE_LIMIT_MARGIN_MS: '0' },
      40,
      [500, 500],
    );
    const engine = await h.engine({ only: ['prelude'], alerts: FAST });
    await engine.startWorkers({ concurrency: 1 });
    const runId = await runActions.startRun(engine, { kind: 'backfill' });
    await until('the backfill enqueued', async () => (await engine.runs.get(runId))?.scan.status === 'done');
    await runActions.abortRun(engine, runId, 'operator stop');
    const run = await runActions.waitForRun(engine, runId, { pollMs: 50 });
    expect(run.status).toBe('aborted');
    await until('the alert delivered', async () => rx.delivered().length >= 1);
    await engine.alerts!.settled();
    expect(rx.requests.map((r) => r.status)).toEqual([500, 500, 200]);
    const [alert] = rx.delivered();
    expect(alert).toMatchObject({
      event: 'run_aborted',
      runId,
      kind: 'backfill',
      status: 'aborted',
      reason: 'operator stop',
      link: `${PUBLIC}/runs/${runId}`,
    });
    expect(alert!.text).toMatch(
      new RegExp(`^profile-sync: run ${runId} \\(backfill\\) ABORTED: operator stop`),
    );
    expect((alert!.counts as Record<string, { skipped?: number }>).prelude!.skipped).toBeGreaterThan(0);

    // A replayed job ending the run again, or another replica seeing the end: no second alert.
    engine.alerts!.runEnded(runId, 'aborted');
    const replica: Engine = await h.engine({ only: ['prelude'], alerts: FAST });
    replica.alerts!.runEnded(runId, 'aborted');
    await runActions.waitForRun(replica, runId, { pollMs: 50 });
    await engine.alerts!.settled();
    await replica.alerts!.settled();
    expect(rx.delivered()).toHaveLength(1);
    await expectClean(h, rx);
  }, 60_000);

  it('a failed run (the source scan keeps failing): one run_failed alert naming the error', async () => {
    const { rx, h } = await setup('alert-failed', { SOURCE_PAGE_SIZE: '50' }, 120);
    h.sandbox.sims.source.setFaults([
      { kind: 'status', status: 503, rate: 1, match: { route: 'GET /user', query: { firstResult: '99' } } },
    ]);
    const engine = await h.engine({ only: ['zephr'], alerts: FAST, settings: { chunkSize: 50 } });
    await engine.startWorkers({ concurrency: 4 });
    const run = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'scheduled' }),
      {
        pollMs: 50,
      },
    );
    expect(run.status).toBe('failed');
    await until('the alert delivered', async () => rx.delivered().length >= 1);
    await engine.alerts!.settled();
    expect(rx.delivered()).toHaveLength(1);
    expect(rx.delivered()[0]).toMatchObject({
      event: 'run_failed',
      runId: run.id,
      kind: 'scheduled',
      status: 'failed',
    });
    expect(String(rx.delivered()[0]!.reason)).toMatch(/503|source/i);
    await expectClean(h, rx);
  }, 60_000);

  it('a target stopped for an authentication failure: one auth_failed alert for it, however many jobs fail, without the token', async () => {
    const wrong = 'wrong-token-9c1d2e3f4a5b';
    const { rx, h } = await setup('alert-auth', { SUNSHINE_API_TOKEN: wrong }, 40);
    const engine = await h.engine({ only: ['sunshine'], alerts: FAST });
    await engine.startWorkers({ concurrency: 4 });
    const run = await runActions.waitForRun(engine, await runActions.startRun(engine, { kind: 'backfill' }), {
      pollMs: 50,
    });
    expect(run.targets.sunshine!.stoppedBy).toBe('auth');
    expect(run.targets.sunshine!.outcomes.failed).toBe(40);
    await until('the alert delivered', async () => rx.delivered().length >= 1);
    await engine.alerts!.settled();
    const delivered = rx.delivered();
    expect(delivered).toHaveLength(1);
    expect(delivered[0]).toMatchObject({ event: 'auth_failed', runId: run.id, target: 'sunshine' });
    expect(String(delivered[0]!.reason)).toMatch(/E_AUTH 401/);
    expect(String(delivered[0]!.text)).toMatch(/AUTH FAILED for sunshine/);
    await expectClean(h, rx, [wrong, h.sandbox.env.SUNSHINE_API_TOKEN!]);
  }, 60_000);

  it('--max-failure-rate passed: one failure_rate_exceeded alert, and no second one for the abort it causes', async () => {
    const { rx, h } = await setup('alert-rate', {}, 150);
    h.sandbox.sims.prelude.setFaults([{ kind: 'status', status: 400, rate: 1, match: { method: 'PATCH' } }]);
    const engine = await h.engine({ only: ['prelude'], alerts: FAST });
    await engine.startWorkers({ concurrency: 2 });
    const runId = await runActions.startRun(engine, { kind: 'backfill', maxFailureRate: 0.2 });
    const run = await runActions.waitForRun(engine, runId, { pollMs: 50 });
    expect(run.status).toBe('aborted');
    expect(run.abortReason).toMatch(/max failure rate exceeded in prelude/);
    await until('the alert delivered', async () => rx.delivered().length >= 1);
    await engine.alerts!.settled();
    expect(rx.delivered().map((a) => a.event)).toEqual(['failure_rate_exceeded']);
    expect(rx.delivered()[0]).toMatchObject({ runId, kind: 'backfill', link: `${PUBLIC}/runs/${runId}` });
    await expectClean(h, rx);
  }, 60_000);

  it('a receiver that never answers neither blocks nor fails the run; shutting down gives the delivery up', async () => {
    rx = await startAlertReceiver({ hang: true });
    h = await startHarness({
      label: 'alert-dead',
      sandbox: { users: 30 },
      env: { ALERT_WEBHOOK_URL: rx.url, SUNSHINE_API_TOKEN: 'wrong-token-for-the-dead-receiver' },
    });
    const engine = await h.engine({ only: ['sunshine', 'zephr'], alerts: { closeTimeoutMs: 100 } });
    await engine.startWorkers({ concurrency: 4 });
    const run = await runActions.waitForRun(engine, await runActions.startRun(engine, { kind: 'backfill' }), {
      pollMs: 50,
    });
    // The auth alert is still hanging (10 s per try, then retries over a minute), yet the run is over
    // and its other target did all its work.
    expect(run.status).toBe('completed');
    expect(run.targets.zephr!.outcomes.created).toBe(30);
    await until('the alert reached the receiver', async () => (rx?.requests.length ?? 0) >= 1);
    expect(rx.requests.every((r) => r.status === null)).toBe(true);
    await engine.close(); // bounded by closeTimeoutMs: resolves although the receiver never answered
  }, 60_000);

  it.skipIf(!existsSync(CLI))(
    'held deletions (MAX_DELETES brake) in a one-off backfill command: one deletions_held alert',
    async () => {
      // The receiver fails the first try: the command's default retry (1 s later) must still deliver
      // it before the command exits (the engine's close waits for deliveries in flight, bounded).
      const { rx, h } = await setup(
        'alert-held',
        { SUNSHINE_ON_DELETE: 'delete', MAX_DELETES: '0' },
        30,
        [500],
      );
      const env = { ...h.env, LOG_LEVEL: 'error' };
      expect((await runCli(['backfill', '--targets', 'sunshine', '--json'], env)).code).toBe(0);
      expect(rx.requests).toHaveLength(0);
      await inspectPost(h.sandbox.urls.source, 'users/remove', {
        ids: ['user-000001', 'user-000002', 'user-000004'],
      });
      const held = await runCli(['backfill', '--targets', 'sunshine', '--json'], env);
      expect(held.code).toBe(1);
      const summary = JSON.parse(held.stdout) as { runId: string; status: string };
      expect(summary.status).toBe('held');
      expect(rx.requests.map((r) => r.status)).toEqual([500, 200]);
      expect(rx.delivered()).toHaveLength(1);
      expect(rx.delivered()[0]).toMatchObject({
        event: 'deletions_held',
        runId: summary.runId,
        link: `${PUBLIC}/runs/${summary.runId}`,
        deletions: { sunshine: { gone: 3, policy: 'delete' } },
      });
      expect(String(rx.delivered()[0]!.reason)).toMatch(/MAX_DELETES 0/);
      expect(String(rx.delivered()[0]!.text)).toContain(
        `profile-sync backfill --confirm-deletes ${summary.runId}`,
      );
      expect(held.stderr).not.toContain(new URL(rx.url).pathname);
      await expectClean(h, rx);
    },
    120_000,
  );
});
