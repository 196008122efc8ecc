import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import type { OpsServer } from '../../../src/http/server.js';
import type { Engine } from '../../../src/queue/engine.js';
import { type OpsHarness, sample, startOpsHarness, until } from './ops-harness.js';

const TOKEN = 'ops-test-token-7f3a9c2e51d04b8a';

describe('ops server on the sandbox engine', () => {
  let h: OpsHarness;
  let engine: Engine;
  let ops: OpsServer;

  beforeAll(async () => {
    h = await startOpsHarness({ label: 'ops' });
    engine = await h.engine();
    ops = await h.server(engine);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('GET /healthz answers 200 {status: ok} with the version', async () => {
    const r = await h.get(`${ops.url}/healthz`);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toMatchObject({ status: 'ok', version: '0.0.0-test' });
  });

  it('metrics: queue depth per target and state matches the queue (N added, N scraped)', async () => {
    // No workers yet: jobs stay where they are put.
    const q = engine.syncQueues.zephr!;
    await q.addBulk(
      Array.from({ length: 7 }, (_, i) => ({ name: 'probe', data: { i }, opts: { priority: 10 } })),
    );
    await q.add('probe', { i: 'plain' });
    await q.add('probe', { i: 'later' }, { delay: 3_600_000 });
    await engine.syncQueues.prelude!.add('probe', { i: 0 });
    let text = (await h.get(`${ops.url}/metrics`)).text;
    expect(sample(text, 'profile_sync_queue_jobs', { target: 'zephr', state: 'waiting' })).toBe(8);
    expect(sample(text, 'profile_sync_queue_jobs', { target: 'zephr', state: 'delayed' })).toBe(1);
    expect(sample(text, 'profile_sync_queue_jobs', { target: 'prelude', state: 'waiting' })).toBe(1);
    expect(sample(text, 'profile_sync_queue_jobs', { target: 'sunshine', state: 'waiting' })).toBe(0);
    expect(sample(text, 'profile_sync_scan_queue_jobs', { state: 'waiting' })).toBe(0);
    expect(sample(text, 'profile_sync_redis_up')).toBe(1);
    expect(sample(text, 'profile_sync_build_info', { version: '0.0.0-test' })).toBe(1);
    // Node's default metrics come along.
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThanOrEqual(0);

    await q.pause();
    text = (await h.get(`${ops.url}/metrics`)).text;
    expect(sample(text, 'profile_sync_queue_jobs', { target: 'zephr', state: 'paused' })).toBe(8);
    expect(sample(text, 'profile_sync_queue_jobs', { target: 'zephr', state: 'waiting' })).toBe(0);
    expect(sample(text, 'profile_sync_queue_paused', { queue: 'sync-zephr' })).toBe(1);
    await q.resume();
    await q.obliterate({ force: true });
    await engine.syncQueues.prelude!.obliterate({ force: true });
    text = (await h.get(`${ops.url}/metrics`)).text;
    expect(sample(text, 'profile_sync_queue_jobs', { target: 'zephr', state: 'waiting' })).toBe(0);
  });

  it('readyz is 503 with a reason while no worker runs, 200 once they do', async () => {
    let r = await h.get(`${ops.url}/readyz`);
    expect(r.status).toBe(503);
    const body = JSON.parse(r.text);
    expect(body.status).toBe('unavailable');
    expect(body.checks.redis.ok).toBe(true);
    expect(body.reasons).toContain('workers: none started in this process');

    await engine.startWorkers({ concurrency: 4 });
    r = await until(async () => {
      const x = await h.get(`${ops.url}/readyz`);
      return x.status === 200 ? x : undefined;
    }, 'readyz 200 after startWorkers');
    expect(JSON.parse(r.text)).toMatchObject({
      status: 'ok',
      checks: { redis: { ok: true }, workers: { scan: true, 'sync-zephr': true } },
    });

    // A paused worker (the daemon pauses them all when it shuts down) takes no job: not ready.
    const zephr = engine.runningWorkers.find((w) => w.name === 'sync-zephr')!;
    await zephr.pause(true);
    r = await h.get(`${ops.url}/readyz`);
    expect(r.status).toBe(503);
    expect(JSON.parse(r.text).reasons).toEqual(['workers: no running worker for queue sync-zephr']);
    zephr.resume();
    expect((await h.get(`${ops.url}/readyz`)).status).toBe(200);
  });

  it('outcome, request and run counters after a small run equal the run record', async () => {
    const runId = await runActions.startRun(engine, { kind: 'backfill', limit: 12 });
    const run = await runActions.waitForRun(engine, runId, { pollMs: 50 });
    expect(run.status).toBe('completed');
    const text = (await h.get(`${ops.url}/metrics`)).text;
    for (const t of engine.targets) {
      const c = run.targets[t]!;
      let total = 0;
      for (const [outcome, n] of Object.entries(c.outcomes)) {
        const got = sample(text, 'profile_sync_outcomes_total', { target: t, outcome }) ?? 0;
        expect(got, `${t} ${outcome}`).toBe(n);
        total += got;
      }
      expect(total).toBe(12);
      expect(sample(text, 'profile_sync_requests_total', { target: t })).toBe(c.requests);
      expect(c.requests).toBeGreaterThan(0);
      expect(sample(text, 'profile_sync_target_stopped', { target: t })).toBe(0);
      // The limiter window is open after the run, but its budget is not spent: no rate-limit wait.
      expect(sample(text, 'profile_sync_rate_limit_wait_seconds', { target: t })).toBe(0);
    }
    expect(sample(text, 'profile_sync_runs_total', { kind: 'backfill', status: 'completed' })).toBe(1);
    expect(sample(text, 'profile_sync_last_run_status', { kind: 'backfill', status: 'completed' })).toBe(1);
    expect(sample(text, 'profile_sync_last_run_end_time_seconds', { kind: 'backfill' })).toBe(
      run.endedAt! / 1000,
    );
    expect(sample(text, 'profile_sync_last_success_time_seconds', { kind: 'backfill' })).toBe(
      run.endedAt! / 1000,
    );
    // Bounded labels only: no user id ever becomes a label value.
    expect(text).not.toMatch(/user(_?id)?="/i);

    // A second scrape adds nothing: counters grow by what the records grew, not by their totals.
    const again = (await h.get(`${ops.url}/metrics`)).text;
    expect(sample(again, 'profile_sync_outcomes_total', { target: 'sunshine', outcome: 'created' })).toBe(
      run.targets.sunshine!.outcomes.created,
    );
    expect(sample(again, 'profile_sync_runs_total', { kind: 'backfill', status: 'completed' })).toBe(1);
  });

  it('a 429 pause (queue.rateLimit) shows as a rate-limit wait in /metrics and on the dashboard', async () => {
    const q = engine.syncQueues.prelude!;
    await q.rateLimit(30_000);
    try {
      const text = (await h.get(`${ops.url}/metrics`)).text;
      const wait = sample(text, 'profile_sync_rate_limit_wait_seconds', { target: 'prelude' })!;
      expect(wait).toBeGreaterThan(0);
      expect(wait).toBeLessThanOrEqual(30);
      expect(sample(text, 'profile_sync_rate_limit_wait_seconds', { target: 'zephr' })).toBe(0);
      const api = JSON.parse((await h.get(`${ops.url}/dashboard/api/queues`)).text) as {
        queues: { name: string; activeRateLimitTtl: number }[];
      };
      const ttl = Object.fromEntries(api.queues.map((x) => [x.name, x.activeRateLimitTtl]));
      expect(ttl['sync-prelude']).toBeGreaterThan(0);
      expect(ttl['sync-zephr']).toBe(0); // window open after the run, budget not spent
    } finally {
      await q.removeRateLimitKey();
    }
  });

  it('a server started after that run takes it as the baseline and counts only newer runs', async () => {
    const late = await h.server(engine);
    let text = (await h.get(`${late.url}/metrics`)).text;
    expect(sample(text, 'profile_sync_outcomes_total', { target: 'sunshine', outcome: 'created' }) ?? 0).toBe(
      0,
    );
    expect(sample(text, 'profile_sync_last_run_status', { kind: 'backfill', status: 'completed' })).toBe(1);

    const run = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'scheduled', limit: 12 }),
      {
        pollMs: 50,
      },
    );
    expect(run.status).toBe('completed');
    text = (await h.get(`${late.url}/metrics`)).text;
    for (const t of engine.targets) {
      const o = run.targets[t]!.outcomes;
      expect(sample(text, 'profile_sync_outcomes_total', { target: t, outcome: 'unchanged' }) ?? 0).toBe(
        o.unchanged,
      );
    }
    expect(run.targets.sunshine!.outcomes.unchanged).toBeGreaterThan(0);
    expect(sample(text, 'profile_sync_runs_total', { kind: 'scheduled', status: 'completed' })).toBe(1);
    expect(sample(text, 'profile_sync_runs_total', { kind: 'backfill', status: 'completed' }) ?? 0).toBe(0);
  });

  it('GET /api/runs lists the newest runs with counts and without user ids', async () => {
    const r = await h.get(`${ops.url}/api/runs?limit=5`);
    expect(r.status).toBe(200);
    const { runs } = JSON.parse(r.text) as { runs: Record<string, unknown>[] };
    expect(runs.length).toBeGreaterThanOrEqual(2);
    const latestId = await engine.runs.latestId();
    expect(runs[0]!.id).toBe(latestId);
    expect(runs[0]).toMatchObject({ kind: 'scheduled', status: 'completed', options: { limit: 12 } });
    expect(
      (runs[0]!.targets as Record<string, { outcomes: Record<string, number> }>).zephr!.outcomes,
    ).toHaveProperty('unchanged');
    const one = await h.get(`${ops.url}/api/runs/latest`);
    expect(JSON.parse(one.text).id).toBe(latestId);
    expect((await h.get(`${ops.url}/api/runs/nope`)).status).toBe(404);
    expect((await h.get(`${ops.url}/api/runs?limit=0`)).status).toBe(400);

    // A single-user run records its users option as a count only.
    const id = await runActions.startRun(engine, {
      kind: 'single-user',
      users: ['u-secret-1', 'u-secret-2'],
      dryRun: true,
    });
    await runActions.waitForRun(engine, id, { pollMs: 50 });
    const listed = await h.get(`${ops.url}/api/runs/${id}`);
    expect(JSON.parse(listed.text).options.users).toBe(2);
    expect(listed.text).not.toContain('u-secret-1');
  });

  it('GET /dashboard serves bull-board over the scan queue and every sync queue, read-only, data masked', async () => {
    const page = await h.get(`${ops.url}/dashboard`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.text).toContain('profile-sync queues');
    const asset = /src="([^"]+\.js)"/.exec(page.text)?.[1];
    expect(asset).toBeDefined();
    const js = await fetch(new URL(asset!, `${ops.url}/dashboard/`));
    expect(js.status).toBe(200);

    // A job nobody will take (no worker consumes the queue name `scan` while we look: pause it).
    await engine.scanQueue.pause();
    await engine.scanQueue.add('probe', { runId: 'r1', email: 'jane.doe@example.com', firstName: 'Jane' });
    const api = await h.get(`${ops.url}/dashboard/api/queues?activeQueue=scan&status=waiting&page=1`);
    expect(api.status).toBe(200);
    const body = JSON.parse(api.text) as {
      queues: { name: string; readOnlyMode: boolean; jobs: { data: unknown }[] }[];
    };
    const names = body.queues.map((q) => q.name).sort();
    expect(names).toEqual(['scan', 'sync-prelude', 'sync-sunshine', 'sync-zephr']);
    expect(body.queues.every((q) => q.readOnlyMode)).toBe(true);
    const scan = body.queues.find((q) => q.name === 'scan')!;
    expect(scan.jobs.length).toBe(1);
    expect(scan.jobs[0]!.data).toEqual({ runId: 'r1', email: 'j***@example.com', firstName: 'J***' });
    expect(api.text).not.toContain('jane.doe');

    // Read-only: a mutation from the page is refused and changes nothing.
    const clean = await fetch(`${ops.url}/dashboard/api/queues/scan/empty`, { method: 'PUT' });
    expect(clean.status).toBe(405);
    expect(await engine.scanQueue.count()).toBe(1);
    await engine.scanQueue.obliterate({ force: true });
    await engine.scanQueue.resume();
  });

  it('a target stopped for an auth failure makes readyz 503 and sets profile_sync_target_stopped', async () => {
    const runId = await engine.runs.create('scheduled', {
      targets: ['sunshine'],
      dryRun: false,
      full: false,
      showPii: false,
      plan: false,
    });
    await engine.runs.stopTarget(runId, 'sunshine', 'E_AUTH 401 credentials refused');
    const r = await h.get(`${ops.url}/readyz`);
    expect(r.status).toBe(503);
    const body = JSON.parse(r.text);
    expect(body.checks.stoppedTargets).toEqual({
      sunshine: { runId, reason: 'E_AUTH 401 credentials refused' },
    });
    expect(body.reasons.join('\n')).toMatch(/target sunshine stopped for an authentication failure/);
    const text = (await h.get(`${ops.url}/metrics`)).text;
    expect(sample(text, 'profile_sync_target_stopped', { target: 'sunshine' })).toBe(1);
    expect(sample(text, 'profile_sync_target_stopped', { target: 'zephr' })).toBe(0);
    expect(sample(text, 'profile_sync_runs_running', { kind: 'scheduled' })).toBe(1);
    await engine.runs.deleteRun(runId);
    expect((await h.get(`${ops.url}/readyz`)).status).toBe(200);
  });

  it('OPS_DASHBOARD_TOKEN protects /dashboard and /api, never the probes or /metrics', async () => {
    const locked = await h.server(engine, { dashboard: { token: TOKEN } });
    for (const path of ['/dashboard', '/dashboard/api/queues', '/api/runs']) {
      const none = await h.get(`${locked.url}${path}`);
      expect(none.status, path).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
      const wrong = await h.get(`${locked.url}${path}`, { headers: { authorization: `Bearer ${TOKEN}x` } });
      expect(wrong.status, path).toBe(401);
      const bearer = await h.get(`${locked.url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(bearer.status, path).toBe(200);
      const basic = `Basic ${Buffer.from(`ops:${TOKEN}`).toString('base64')}`;
      expect((await h.get(`${locked.url}${path}`, { headers: { authorization: basic } })).status, path).toBe(
        200,
      );
    }
    for (const path of ['/healthz', '/readyz', '/metrics'])
      expect((await h.get(`${locked.url}${path}`)).status, path).toBe(200);
  });

  it('a writable dashboard refuses writes from another site (the browser would send Basic credentials)', async () => {
    const writable = await h.server(engine, { dashboard: { token: TOKEN, readOnly: false } });
    const auth = { authorization: `Basic ${Buffer.from(`ops:${TOKEN}`).toString('base64')}` };
    const add = `${writable.url}/dashboard/api/queues/scan/add`;
    const body = JSON.stringify({ name: 'csrf', data: {} });
    await engine.scanQueue.pause();
    try {
      const crossSite: Record<string, string>[] = [
        { origin: 'https://evil.example' },
        { 'sec-fetch-site': 'cross-site' },
        { origin: 'null' },
      ];
      for (const headers of crossSite) {
        const r = await h.get(add, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'text/plain', ...headers },
          body,
        });
        expect(r.status, JSON.stringify(headers)).toBe(403);
      }
      expect(await engine.scanQueue.count()).toBe(0);
      // The page itself (same origin) and scripts (no Origin) may write when read-only is off.
      const same = await h.get(add, {
        method: 'POST',
        headers: {
          ...auth,
          'content-type': 'application/json',
          origin: writable.url,
          'sec-fetch-site': 'same-origin',
        },
        body,
      });
      expect(same.status).toBe(200);
      expect(await engine.scanQueue.count()).toBe(1);
    } finally {
      await engine.scanQueue.obliterate({ force: true });
      await engine.scanQueue.resume();
    }
  });

  it('no secret in any response: the token, vendor credentials, Redis URL password', () => {
    const secrets = [
      TOKEN,
      h.env.SUNSHINE_API_TOKEN,
      h.env.PRELUDE_API_KEY,
      h.env.ZEPHR_JWT_SECRET,
      h.env.SOURCE_PASSWORD,
      h.env.SOURCE_TOKEN,
    ].filter((s): s is string => typeof s === 'string' && s.length > 0);
    expect(secrets.length).toBeGreaterThanOrEqual(3);
    expect(h.seen.length).toBeGreaterThan(40);
    const all = h.seen.join('\n');
    for (const s of secrets) expect(all.includes(s), `a response contains ${s.slice(0, 3)}...`).toBe(false);
  });
});
