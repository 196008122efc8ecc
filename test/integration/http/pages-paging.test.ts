import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TargetId } from '../../../src/core/targets.js';
import type { OpsServer } from '../../../src/http/server.js';
import type { Engine } from '../../../src/queue/engine.js';
import type { CounterDelta, RunItem } from '../../../src/store/run-record.js';
import { type OpsHarness, startOpsHarness } from './ops-harness.js';
import { attrs, count, escaped, expectShell, relHref, section, table } from './pages-html.js';

const HOSTILE_ID = '<script>alert(1)</script>';
const HOSTILE_FROM = '<img src=x onerror=alert(1)>';
const HOSTILE_TO = '"><script>alert(2)</script>';
const ITEMS = 10_000;

/** Item i of the big run: every tenth (i % 10 === 7) a failure, the rest email changes; item 0 hostile. */
function item(i: number): RunItem {
  const target: TargetId = i % 2 ? 'zephr' : 'sunshine';
  const base = {
    target,
    attempts: 1,
    requests: [],
    at: 1_700_000_000_000 + i,
    jobId: `sync-${target}-x-${i}`,
  };
  if (i === 0)
    return {
      ...base,
      userId: HOSTILE_ID,
      outcome: 'updated',
      diff: { 'attributes.note': { from: HOSTILE_FROM, to: HOSTILE_TO } },
    };
  if (i % 10 === 7)
    return {
      ...base,
      userId: `u-${i}`,
      outcome: 'failed',
      attempts: 5,
      lastError: { code: 'E_SERVER', message: `500 from the vendor for new${i}@example.com` },
    };
  return {
    ...base,
    userId: `u-${i}`,
    outcome: 'updated',
    diff: { email: { from: `old${i}@example.com`, to: `new${i}@example.com` } },
  };
}

/** Runs and items seeded through the run store's own functions (no sandbox traffic): the paging. */
describe('ops pages: paging through many runs and a run of 10,000 items (issue 12.1)', () => {
  let h: OpsHarness;
  let engine: Engine;
  let ops: OpsServer;
  let big: string;

  beforeAll(async () => {
    h = await startOpsHarness({ label: 'pages-paging', users: 5 });
    engine = await h.engine();
    ops = await h.server(engine, { dashboard: { readOnly: false }, actionEngine: engine });
  });
  afterAll(async () => {
    await h?.close();
  });

  const get = (path: string) => h.get(`${ops.url}${path}`, { redirect: 'manual' });

  it('empty states: no runs yet, the search page, every target', async () => {
    const runs = await get('/runs');
    expect(runs.status).toBe(200);
    expect(runs.text).toContain('No runs yet.');
    expect(runs.text).not.toContain('<table id="runs">');
    expect(relHref(runs.text, 'next')).toBeUndefined();
    expect((await get('/runs/latest')).status).toBe(404);
    const search = await get('/users');
    expect(search.status).toBe(200);
    expect(search.text).toContain('<title>Find a user');
    const targets = table((await get('/targets')).text, 'targets-status');
    for (const t of ['sunshine', 'zephr', 'prelude']) expect(targets).toContain(`<tr data-target="${t}">`);
    for (const p of ['/runs', '/users', '/targets']) expect(expectShell((await get(p)).text)).toEqual([]);
  });

  it('200 runs: 50 a page, newest first, next and prev links covering every run once', async () => {
    const t0 = Date.now() - 3_600_000;
    for (let i = 0; i < 200; i++) {
      const id = await engine.runs.create(
        i % 3 ? 'scheduled' : 'backfill',
        { targets: ['sunshine'], dryRun: false, full: false, showPii: false, plan: false },
        t0 + i * 1000,
      );
      await engine.runs.record(id, { counters: [['sunshine', 'updated', i]] });
      await engine.runs.finish(id, i % 7 ? 'completed' : 'failed');
    }
    const newestFirst = await h.redis.zrevrange(engine.layout.runs(), 0, -1);
    expect(newestFirst).toHaveLength(200);
    const seen: string[] = [];
    let path: string | undefined = '/runs';
    let pages = 0;
    while (path) {
      const r = await get(path);
      expect(r.status).toBe(200);
      const ids = [...table(r.text, 'runs').matchAll(/<tr data-run-id="([^"]+)"/g)].map((m) => m[1]!);
      expect(ids).toHaveLength(50);
      expect(count(r.text, 'class="run-link"')).toBe(50);
      if (pages === 0) expect(relHref(r.text, 'prev')).toBeUndefined();
      else expect(relHref(r.text, 'prev')).toBe(`/runs?page=${pages}`);
      seen.push(...ids);
      pages++;
      path = relHref(r.text, 'next');
      if (path) expect(path).toBe(`/runs?page=${pages + 1}`);
    }
    expect(pages).toBe(4);
    expect(seen).toEqual(newestFirst);
    const latest = await get('/runs/latest');
    expect(latest.status).toBe(303);
    expect(latest.headers.get('location')).toBe(`/runs/${newestFirst[0]}`);
    expect((await get('/runs?page=0')).status).toBe(400);
    expect((await get('/runs?page=9')).text).toContain('No runs on page 9');
  });

  it('a run of 10,000 items: one page of each section and a next link; the next page continues', async () => {
    big = await engine.runs.create('backfill', {
      targets: ['sunshine', 'zephr', 'prelude'],
      dryRun: false,
      full: false,
      showPii: false,
      plan: false,
    });
    for (let start = 0; start < ITEMS; start += 500) {
      const items = Array.from({ length: 500 }, (_, k) => item(start + k));
      const counters: CounterDelta[] = items.map((i) => [i.target, i.outcome, 1]);
      await engine.runs.record(big, { items, counters });
    }
    // One removal, last: its section reads 2,000 entries a page and says where it stopped.
    const removal: RunItem = {
      userId: 'gone-1',
      target: 'prelude',
      outcome: 'removed',
      attempts: 1,
      requests: [],
      at: 1,
    };
    await engine.runs.record(big, { items: [removal], counters: [['prelude', 'removed', 1]] });
    await engine.runs.finish(big, 'completed');
    expect(await engine.runs.itemCount(big)).toBe(ITEMS + 1);

    const r = await get(`/runs/${big}`);
    expect(r.status).toBe(200);
    expect(r.text).toContain(`${ITEMS + 1} item(s) recorded, PII masked.`);
    const changes = section(r.text, 'changes');
    const users = attrs(changes, 'change', 'data-user');
    expect(users).toHaveLength(50);
    const expected = Array.from({ length: ITEMS }, (_, i) => i)
      .filter((i) => i % 10 !== 7)
      .map((i) => (i === 0 ? escaped(HOSTILE_ID) : `u-${i}`));
    expect(users).toEqual(expected.slice(0, 50));
    expect(count(r.text, /class="(change|failure|removal)"/)).toBe(100); // not the 10,000
    const failures = section(r.text, 'failures');
    expect(count(failures, 'class="failure"')).toBe(50);
    expect(failures).toContain('error: E_SERVER 500 from the vendor for n***@example.com');
    expect(r.text).not.toMatch(/new\d+@example\.com|old\d+@example\.com/);
    let removals = section(r.text, 'removals');
    expect(removals).toContain('No removals in items 1 to 2000; the next page reads on.');
    const hops: string[] = [];
    for (let next = relHref(removals, 'next'); next; next = relHref(removals, 'next')) {
      hops.push(next);
      removals = section((await get(next.replace(/#.*/, ''))).text, 'removals');
    }
    expect(hops.map((x) => /removals=(\d+)/.exec(x)![1])).toEqual(['2000', '4000', '6000', '8000', '10000']);
    expect(attrs(removals, 'removal', 'data-user')).toEqual(['gone-1']);

    const next = relHref(changes, 'next')!;
    expect(next).toMatch(new RegExp(`^/runs/${big}\\?changes=\\d+#changes$`));
    const page2 = section((await get(next.replace(/#.*/, ''))).text, 'changes');
    expect(attrs(page2, 'change', 'data-user')).toEqual(expected.slice(50, 100));
    expect(relHref(page2, 'first')).toBe(`/runs/${big}#changes`);
    const fNext = relHref(failures, 'next')!;
    expect(fNext).toMatch(/\?failures=\d+#failures$/);
    const f2 = section((await get(fNext.replace(/#.*/, ''))).text, 'failures');
    expect(attrs(f2, 'failure', 'data-user')[0]).toBe('u-507');
  });

  it('hostile user ids and field values are printed as text, never as markup', async () => {
    const r = await get(`/runs/${big}`);
    for (const bad of [HOSTILE_ID, HOSTILE_FROM, '<script>alert(2)', 'onerror=alert(1)>'])
      expect(r.text).not.toContain(bad);
    const changes = section(r.text, 'changes');
    expect(changes).toContain(`data-user="${escaped(HOSTILE_ID)}"`);
    expect(changes).toContain(
      `<li class="diff">attributes.note: ${escaped(JSON.stringify(HOSTILE_FROM))} -&gt; ${escaped(JSON.stringify(HOSTILE_TO))}</li>`,
    );
    expect(changes).toContain(
      `<a href="/users/${encodeURIComponent(HOSTILE_ID)}">${escaped(HOSTILE_ID)}</a>`,
    );
    const user = await get(`/users/${encodeURIComponent(HOSTILE_ID)}`);
    expect(user.status).toBe(200);
    expect(user.text).not.toContain(HOSTILE_ID);
    expect(section(user.text, 'timeline')).toContain(`data-run-id="${big}"`);
    expect(user.text).toContain(`<title>User ${escaped(HOSTILE_ID)} · profile-sync</title>`);
  });
});
