import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import { maskEmail } from '../../../src/core/masking.js';
import type { OpsServer } from '../../../src/http/server.js';
import type { Engine } from '../../../src/queue/engine.js';
import { createLinkStore } from '../../../src/store/links.js';
import type { RunRecord } from '../../../src/store/run-record.js';
import { inspectPost } from '../engine/harness.js';
import { type OpsHarness, startOpsHarness, until } from './ops-harness.js';
import { attrs, count, escaped, expectShell, row, section, table } from './pages-html.js';

const TOKEN = 'pages-test-token-5d1c7a9e3b2f4c61';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const RAW_EMAIL = 'raw.person.visible@rawmail.example';
const USER = 'user-000001';

/**
 * Issue 12.1: the server-rendered pages over real runs. Four backfills over the sandbox: the first
 * creates everyone, the second carries an email change, the third fails in Sunshine (dead letters),
 * the fourth is held by the deletion brake. Then the pages are read through a read-only server and
 * acted on through a read-write one, both on the same engine.
 */
describe('ops pages over real runs (issue 12.1)', () => {
  let h: OpsHarness;
  let engine: Engine;
  let ro: OpsServer;
  let rw: OpsServer;
  const runs: Record<'first' | 'change' | 'failed' | 'held', RunRecord> = {} as never;
  const syncCalls: string[] = [];

  const backfill = async () =>
    runActions.waitForRun(engine, await runActions.startRun(engine, { kind: 'backfill' }), { pollMs: 50 });

  beforeAll(async () => {
    h = await startOpsHarness({
      label: 'pages',
      users: 30,
      env: { SUNSHINE_ON_DELETE: 'delete', ZEPHR_ON_DELETE: 'clear', SYNC_ATTEMPTS: '1' },
    });
    engine = await h.engine();
    await engine.startWorkers({ concurrency: 4 });
    runs.first = await backfill();
    await inspectPost(h.sandbox.urls.source, `users/${USER}`, { email: RAW_EMAIL }, 'PATCH');
    runs.change = await backfill();
    // Three users change; Sunshine answers 500 to everything meanwhile: three dead letters.
    for (const id of ['user-000002', 'user-000004', 'user-000005'])
      await inspectPost(h.sandbox.urls.source, `users/${id}`, { lastName: 'Changed' }, 'PATCH');
    await inspectPost(h.sandbox.urls.sunshine, 'faults', [{ kind: 'status', status: 500 }], 'PUT');
    runs.failed = await backfill();
    await fetch(`${h.sandbox.urls.sunshine}/__sandbox/faults`, { method: 'DELETE' });
    await until(
      async () => ((await engine.syncQueues.sunshine!.getFailedCount()) >= 3 ? true : undefined),
      'three dead letters',
    );
    // Half the source leaves (not the users above): the brake holds the removals.
    const leaving = Array.from({ length: 15 }, (_, i) => `user-0000${String(i + 10).padStart(2, '0')}`);
    await inspectPost(h.sandbox.urls.source, 'users/remove', { ids: leaving });
    runs.held = await backfill();

    const syncNow = async (userId: string) => {
      syncCalls.push(userId);
      const runId = await runActions.startRun(engine, { kind: 'single-user', users: [userId] });
      return { status: 202, body: { runId } };
    };
    ro = await h.server(engine, {
      dashboard: { token: TOKEN, readOnly: true },
      actionEngine: engine,
      syncNow,
    });
    rw = await h.server(engine, {
      dashboard: { token: TOKEN, readOnly: false },
      actionEngine: engine,
      syncNow,
    });
  }, 120_000);
  afterAll(async () => {
    await h?.close();
  });

  const get = (s: OpsServer, path: string, init: RequestInit = {}) =>
    h.get(`${s.url}${path}`, { ...init, headers: { ...AUTH, ...(init.headers ?? {}) }, redirect: 'manual' });
  const post = (s: OpsServer, path: string, headers: Record<string, string> = {}) =>
    get(s, path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: '',
    });

  it('the runs were what the test needs', () => {
    expect(runs.first.status).toBe('completed');
    expect(runs.change.targets.sunshine!.outcomes.updated).toBe(1);
    expect(runs.failed.targets.sunshine!.outcomes.failed).toBe(3);
    expect(runs.held.status).toBe('held');
  });

  it('every page and every POST needs the token (401 with a Basic challenge); the password works', async () => {
    const paths = ['/runs', `/runs/${runs.first.id}`, `/users/${USER}`, '/users?id=x', '/targets'];
    for (const p of paths) {
      const r = await h.get(`${ro.url}${p}`, { redirect: 'manual' });
      expect(r.status, p).toBe(401);
      expect(r.headers.get('www-authenticate')).toMatch(/^Basic /);
      const wrong = await h.get(`${ro.url}${p}`, { headers: { authorization: 'Bearer nope' } });
      expect(wrong.status, p).toBe(401);
    }
    const x = await h.get(`${rw.url}/runs/${runs.failed.id}/retry-failed`, { method: 'POST' });
    expect(x.status).toBe(401);
    const basic = `Basic ${Buffer.from(`ops:${TOKEN}`).toString('base64')}`;
    expect((await h.get(`${ro.url}/runs`, { headers: { authorization: basic } })).status).toBe(200);
  });

  it('/runs: every run newest first with kind, status, counts, requests; the shell on every page', async () => {
    const r = await get(ro, '/runs');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(expectShell(r.text)).toEqual([]);
    const t = table(r.text, 'runs');
    const order = [...t.matchAll(/<tr data-run-id="([^"]+)"/g)].map((m) => m[1]);
    expect(order).toEqual([runs.held.id, runs.failed.id, runs.change.id, runs.first.id]);
    for (const run of Object.values(runs)) {
      const tr = row(t, 'data-run-id', run.id);
      expect(tr).toContain(`<a class="run-link" href="/runs/${run.id}">${run.id}</a>`);
      expect(tr).toContain(`<td class="status status-${run.status}">${run.status}</td>`);
      expect(tr).toContain(new Date(run.startedAt).toISOString());
    }
    const first = row(t, 'data-run-id', runs.first.id);
    expect(first).toContain(`sunshine: created ${runs.first.targets.sunshine!.outcomes.created}`);
    const requests = Object.values(runs.first.targets).reduce((n, c) => n + c.requests, 0);
    expect(first).toContain(`<td class="num">${requests}</td>`);
    expect(row(t, 'data-run-id', runs.failed.id)).toMatch(/sunshine: updated 0|sunshine: [^<]*failed 3/);
    for (const p of [`/runs/${runs.first.id}`, `/users/${USER}`, '/targets', '/users', '/runs/nope'])
      expect(expectShell((await get(ro, p)).text), p).toEqual([]);
  });

  it('/runs/<id>: the report table, the change with its masked, fingerprinted diff, never the raw email', async () => {
    const r = await get(ro, `/runs/${runs.change.id}`);
    expect(r.status).toBe(200);
    expect(r.text).toContain(`<title>Run ${runs.change.id} · profile-sync</title>`);
    const t = table(r.text, 'run-targets');
    const sunshine = row(t, 'data-target', 'sunshine');
    const c = runs.change.targets.sunshine!;
    expect(sunshine).toContain(`<td class="num">${c.outcomes.updated}</td>`);
    expect(sunshine).toContain(`<td class="num">${c.outcomes.unchanged}</td>`);
    const changes = section(r.text, 'changes');
    expect(attrs(changes, 'change', 'data-target').sort()).toEqual(['prelude', 'sunshine', 'zephr']);
    expect(attrs(changes, 'change', 'data-user')).toEqual([USER, USER, USER]);
    const masked = maskEmail(RAW_EMAIL, await engine.runs.maskKey());
    expect(masked).toMatch(/^r\*\*\*@rawmail\.example#[0-9a-f]{4}$/);
    expect(changes).toContain(`<li class="diff">identifiers.email: `);
    expect(changes).toContain(`-&gt; ${escaped(JSON.stringify(masked))}</li>`);
    expect(r.text).not.toContain('raw.person.visible');
    // bull-board both ways: the item links to its job view, the board links back to /runs.
    const job = /<a class="bull-link" href="(\/dashboard\/queue\/sync-sunshine\/[^"]+)"/.exec(changes);
    expect(job).not.toBeNull();
    const board = await get(ro, job![1]!);
    expect(board.status).toBe(200);
    expect(board.text).toContain('__UI_CONFIG__');
    expect(board.text).toMatch(/"url":"\/runs"/);
    expect(section(r.text, 'failures')).toContain('No failures and rejections in this run.');
  });

  it('/runs/<id>: failures with their error and attempts, removals held with the reason', async () => {
    const f = await get(ro, `/runs/${runs.failed.id}`);
    const failures = section(f.text, 'failures');
    expect(count(failures, 'class="failure"')).toBe(3);
    expect(attrs(failures, 'failure', 'data-target')).toEqual(['sunshine', 'sunshine', 'sunshine']);
    expect(failures).toMatch(/error: E_[A-Z_]+ /);
    expect(f.text).not.toContain('id="held-reason"');
    const held = await get(ro, `/runs/${runs.held.id}`);
    expect(held.text).toMatch(
      /<p id="held-reason" class="warn">Deletions held by the safety brake: [^<]*MAX_DELETE_RATE/,
    );
    const removals = section(held.text, 'removals');
    const orphaned = Object.values(runs.held.targets).reduce((n, c) => n + c.outcomes.orphaned, 0);
    expect(runs.held.targets.sunshine!.outcomes.orphaned).toBeGreaterThan(10);
    expect(count(removals, 'class="removal"')).toBe(orphaned);
    expect(removals).toContain('removal held by the safety brake');
  });

  it('read-only: no button anywhere, and every POST is refused with 403', async () => {
    for (const p of [`/runs/${runs.held.id}`, `/runs/${runs.failed.id}`, `/users/${USER}`]) {
      const r = await get(ro, p);
      expect(r.text, p).not.toMatch(/action-(confirm-deletes|retry-failed|sync-now)/);
      expect(r.text, p).not.toContain('method="post"');
    }
    const before = await engine.runs.count();
    for (const p of [
      `/runs/${runs.held.id}/confirm-deletes`,
      `/runs/${runs.failed.id}/retry-failed`,
      `/users/${USER}/sync-now`,
    ]) {
      const r = await post(ro, p);
      expect(r.status, p).toBe(403);
      expect(r.text).toContain('read-only');
    }
    expect(await engine.runs.count()).toBe(before);
    expect(syncCalls).toEqual([]);
    expect((await engine.runs.get(runs.held.id))!.status).toBe('held');
  });

  it('read-write: the buttons show where they apply; a cross-site POST is refused', async () => {
    const held = await get(rw, `/runs/${runs.held.id}`);
    expect(held.text).toContain(
      `<form class="action-confirm-deletes inline" method="post" action="/runs/${runs.held.id}/confirm-deletes">`,
    );
    const failed = await get(rw, `/runs/${runs.failed.id}`);
    expect(failed.text).toContain(
      `<form class="action-retry-failed inline" method="post" action="/runs/${runs.failed.id}/retry-failed">`,
    );
    expect(failed.text).not.toContain('action-confirm-deletes');
    expect((await get(rw, `/runs/${runs.first.id}`)).text).not.toMatch(/action-(confirm|retry)/);
    const evil = await post(rw, `/runs/${runs.failed.id}/retry-failed`, { origin: 'http://evil.example' });
    expect(evil.status).toBe(403);
    const fetchSite = await post(rw, `/runs/${runs.held.id}/confirm-deletes`, {
      'sec-fetch-site': 'cross-site',
    });
    expect(fetchSite.status).toBe(403);
    expect((await engine.runs.get(runs.held.id))!.status).toBe('held');
  });

  it('"retry failed" re-drives the dead letters as a retry run and answers 303 back to the page', async () => {
    const r = await post(rw, `/runs/${runs.failed.id}/retry-failed`, { origin: rw.url });
    expect(r.status).toBe(303);
    const location = r.headers.get('location')!;
    const m = /^\/runs\/([^?]+)\?done=retried&retry=(.+)$/.exec(location);
    expect(m?.[1]).toBe(runs.failed.id);
    const retry = await runActions.waitForRun(engine, decodeURIComponent(m![2]!), { pollMs: 50 });
    expect(retry.kind).toBe('retry');
    expect(retry.options.retryOf).toBe(runs.failed.id);
    // The three re-driven jobs settled (the held run in between already wrote them: unchanged now).
    const o = retry.targets.sunshine!.outcomes;
    expect(o.updated + o.unchanged).toBe(3);
    expect(o.failed).toBe(0);
    const back = await get(rw, location);
    expect(back.text).toContain(`Dead letters re-driven as run <a href="/runs/${retry.id}">`);
    // Nothing left: the button is gone, and a second POST says so.
    expect(back.text).not.toContain('action-retry-failed');
    const again = await post(rw, `/runs/${runs.failed.id}/retry-failed`);
    expect(again.headers.get('location')).toBe(`/runs/${runs.failed.id}?done=nothing-to-retry`);
  });

  it('"confirm deletions" re-drives the held removals; the run then completes', async () => {
    const r = await post(rw, `/runs/${runs.held.id}/confirm-deletes`);
    expect(r.status).toBe(303);
    expect(r.headers.get('location')).toBe(`/runs/${runs.held.id}?done=confirmed`);
    const done = await runActions.waitForRun(engine, runs.held.id, { pollMs: 50 });
    expect(done.status).toBe('completed');
    expect(done.targets.sunshine!.outcomes.removed).toBe(runs.held.targets.sunshine!.outcomes.orphaned);
    const page = await get(rw, `/runs/${runs.held.id}`);
    expect(page.text).toMatch(/id="held-reason"[^>]*>[^<]*confirmed \d{4}-/);
    expect(page.text).not.toContain('action-confirm-deletes');
    const again = await post(rw, `/runs/${runs.held.id}/confirm-deletes`);
    expect(again.headers.get('location')).toBe(`/runs/${runs.held.id}?done=confirm-refused`);
  });

  it('/users: search redirects; the timeline across runs and targets; the Prelude link; "sync now"', async () => {
    const search = await get(ro, `/users?id=${encodeURIComponent(USER)}`);
    expect(search.status).toBe(303);
    expect(search.headers.get('location')).toBe(`/users/${USER}`);
    let r = await get(ro, `/users/${USER}`);
    expect(r.status).toBe(200);
    const timeline = section(r.text, 'timeline');
    const events = [...timeline.matchAll(/<tr class="event" data-run-id="([^"]+)" data-target="([^"]+)"/g)];
    const history = await engine.runs.history(USER);
    expect(events).toHaveLength(history.length);
    expect(new Set(events.map((e) => e[1]))).toEqual(new Set([runs.first.id, runs.change.id]));
    expect(new Set(events.map((e) => e[2]))).toEqual(new Set(['sunshine', 'zephr', 'prelude']));
    expect(timeline).toContain(escaped(JSON.stringify(maskEmail(RAW_EMAIL, await engine.runs.maskKey()))));
    expect(r.text).not.toContain('raw.person.visible');
    // The sandbox's Prelude knows this user by external_id: the scan's batch_lookup linked them.
    const looked = await createLinkStore(h.redis, h.prefix).get(USER);
    expect(looked).toMatch(/^usr_/);
    expect(r.text).toMatch(
      new RegExp(
        `<p id="prelude-link">linked to Prelude user <code>${looked}</code> \\(found by external_id, \\d{4}-`,
      ),
    );
    await createLinkStore(h.redis, h.prefix).import([{ sourceId: USER, preludeUserId: 'usr_pages_1' }]);
    r = await get(ro, `/users/${USER}`);
    expect(r.text).toMatch(
      /<p id="prelude-link">linked to Prelude user <code>usr_pages_1<\/code> \(found by import, \d{4}-\d\d-\d\dT/,
    );
    expect(r.text).not.toContain('action-sync-now');

    const w = await get(rw, `/users/${USER}`);
    expect(w.text).toContain(`<form class="action-sync-now" method="post" action="/users/${USER}/sync-now">`);
    expect((await post(rw, `/users/${encodeURIComponent('a\nb')}/sync-now`)).status).toBe(400);
    expect(syncCalls).toEqual([]);
    const s = await post(rw, `/users/${USER}/sync-now`);
    expect(s.status).toBe(303);
    expect(syncCalls).toEqual([USER]);
    const m = /^\/users\/user-000001\?sync=202&run=(.+)$/.exec(s.headers.get('location')!);
    expect(m).not.toBeNull();
    const back = await get(rw, s.headers.get('location')!);
    expect(back.text).toContain(`Sync requested as run <a href="/runs/${m![1]}">`);
    await runActions.waitForRun(engine, m![1]!, { pollMs: 50 });
  });

  it('unknown run and user: 404 pages; a hostile id is printed as text', async () => {
    const run = await get(ro, '/runs/20200101T000000Z-dead');
    expect(run.status).toBe(404);
    expect(run.text).toContain('<title>Run not found');
    const hostile = '<script>alert(1)</script>';
    const user = await get(ro, `/users/${encodeURIComponent(hostile)}`);
    expect(user.status).toBe(404);
    expect(user.text).toContain('<title>User not found');
    expect(user.text).not.toContain(hostile);
    expect(user.text).toContain(escaped(hostile));
    const weird = await get(ro, `/runs/${encodeURIComponent(hostile)}`);
    expect(weird.status).toBe(404);
    expect(weird.text).not.toContain(hostile);
  });

  it('/targets: limits, the effective limit after a cut, a 429 pause, a stopped target', async () => {
    const [sec] = await h.redis.time();
    const now = Number(sec) * 1000;
    await h.redis.hset(engine.layout.throttleAdapt('zephr'), { base: 7, at: now, step: 1 });
    await h.redis.set(engine.layout.throttlePause('prelude'), String(now + 45_000), 'PX', 45_000);
    const stopped = await engine.runs.create('retry', {
      targets: ['sunshine'],
      dryRun: false,
      full: false,
      showPii: false,
      plan: false,
    });
    await engine.runs.stopTarget(stopped, 'sunshine', 'E_AUTH: 401 Unauthorized');
    const r = await get(ro, '/targets');
    expect(r.status).toBe(200);
    const t = table(r.text, 'targets-status');
    const zephr = row(t, 'data-target', 'zephr');
    expect(zephr).toContain('<td class="num limit">100000</td>');
    expect(zephr).toMatch(/<td class="num effective-limit[^"]*">7 \(cut after a 429\)<\/td>/);
    expect(row(t, 'data-target', 'prelude')).toContain(
      `<td class="paused-until">${new Date(now + 45_000).toISOString()}`,
    );
    const sunshine = row(t, 'data-target', 'sunshine');
    expect(sunshine).toContain('<td class="num effective-limit">100000</td>');
    expect(sunshine).toContain(`STOPPED (auth)</span> in run <a href="/runs/${stopped}">`);
    expect(Number(/<td class="num recent-requests">(\d+)<\/td>/.exec(sunshine)![1])).toBeGreaterThan(0);
    expect(row(t, 'data-target', 'zephr')).toContain('<td class="stopped">no</td>');
  });

  it('no secret in any page: the dashboard token, vendor credentials, the mask key', async () => {
    const secrets = [
      TOKEN,
      h.env.SUNSHINE_API_TOKEN!,
      h.env.ZEPHR_JWT_SECRET!,
      h.env.PRELUDE_API_KEY!,
      h.env.SOURCE_PASSWORD!,
      await engine.runs.maskKey(),
    ];
    const bodies = h.seen.join('\n');
    expect(bodies.length).toBeGreaterThan(10_000);
    for (const s of secrets) expect(bodies.includes(s), `a page shows ${s.slice(0, 3)}...`).toBe(false);
  });
});
