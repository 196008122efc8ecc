import { afterEach, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import * as scan from '../../../jobs/scan.js';
import { userKey } from '../../../src/core/hashing.js';
import { USER_SYNC_COLLAPSE_MS } from '../../../src/http/user-sync.js';
import { PRIORITY } from '../../../src/queue/context.js';
import { inspect } from '../engine/harness.js';
import { type OpsHarness, startOpsHarness, until } from './ops-harness.js';

const TOKEN = 'api-test-token-5d1c8e7a9b2f4e60';
const auth = { authorization: `Bearer ${TOKEN}` };

function post(url: string, headers: Record<string, string> = auth) {
  return fetch(url, { method: 'POST', headers }).then(async (r) => ({
    status: r.status,
    headers: r.headers,
    body: JSON.parse(await r.text()) as Record<string, unknown>,
  }));
}
const route = (base: string, id: string) => `${base}/users/${encodeURIComponent(id)}/sync`;

describe('POST /users/{id}/sync (issue 12.2)', () => {
  let h: OpsHarness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('is refused (503, naming OPS_API_TOKEN) while OPS_API_TOKEN is not set, even to a caller with a token', async () => {
    h = await startOpsHarness({ label: 'usync-off' });
    const engine = await h.engine();
    const ops = await h.server(engine, { userSync: engine });
    const r = await post(route(ops.url, 'user-000001'));
    expect(r.status).toBe(503);
    expect(r.body.error).toMatch(/OPS_API_TOKEN is not set/);
    expect(await engine.runs.list(10)).toEqual([]);
  });

  it('checks the token, method, origin and id before anything is enqueued; 404 for a user the source does not know', async () => {
    h = await startOpsHarness({ label: 'usync-auth', env: { OPS_API_TOKEN: TOKEN } });
    const engine = await h.engine();
    const ops = await h.server(engine, { userSync: engine });
    const url = route(ops.url, 'user-000001');
    const none = await post(url, {});
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await post(url, { authorization: 'Bearer wrong-token-of-some-length' })).status).toBe(401);
    // Basic (which a browser re-sends on its own) is not accepted for this writing route.
    const basic = `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`;
    expect((await post(url, { authorization: basic })).status).toBe(401);
    const get = await fetch(url, { headers: auth });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    const cross = await post(url, { ...auth, origin: 'https://evil.example' });
    expect(cross.status).toBe(403);

    const bad: [string, RegExp][] = [
      [`${ops.url}/users//sync`, /invalid user id: empty/],
      [`${ops.url}/users/../sync`, /invalid user id: .*"\.\."/],
      [`${ops.url}/users/%2e/sync`, /invalid user id: .*"\."/],
      [`${ops.url}/users/a%0Ab/sync`, /invalid user id: contains control characters/],
      [`${ops.url}/users/${'x'.repeat(257)}/sync`, /invalid user id: longer than 256 characters/],
      [`${ops.url}/users/%E0%A4%A/sync`, /invalid user id: malformed percent-encoding/],
    ];
    for (const [u, message] of bad) {
      // fetch would normalise `/users/../sync`: send the raw path with node:http.
      const r = await rawPost(u);
      expect(r.status, u).toBe(400);
      expect(r.body.error, u).toMatch(message);
    }
    const unknown = await post(route(ops.url, 'nobody-at-all'));
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatch(/not found in the source/);
    expect(await engine.runs.list(10)).toEqual([]);
  });

  it('202 with the run and job ids in the single-user lane; a repeat within the window collapses into the same run; two servers on one prefix start one run', async () => {
    h = await startOpsHarness({ label: 'usync-collapse', env: { OPS_API_TOKEN: TOKEN } });
    const a = await h.engine();
    const b = await h.engine();
    const opsA = await h.server(a, { userSync: a });
    const opsB = await h.server(b, { userSync: b });
    // No workers yet: the run stays queued, so repeats collapse into it.
    const first = await post(route(opsA.url, 'user-000002'));
    expect(first.status).toBe(202);
    const runId = first.body.runId as string;
    expect(first.body).toMatchObject({ collapsed: false, jobId: scan.jobId(runId), userId: 'user-000002' });
    const run = await a.runs.get(runId);
    expect(run).toMatchObject({
      kind: 'single-user',
      status: 'running',
      options: { users: ['user-000002'] },
    });
    const job = await a.scanQueue.getJob(scan.jobId(runId));
    expect(job?.opts.priority).toBe(PRIORITY['single-user']);

    const again = await post(route(opsB.url, 'user-000002'));
    expect(again.status).toBe(202);
    expect(again.body).toMatchObject({ runId, collapsed: true });
    expect(String(again.body.message)).toMatch(/collapsed into run/);

    // Once the run's scan has started (it reads the user next, or already has), a repeat may announce a
    // change newer than what it reads: a new run, not a collapse. (The scan job marks its scan running
    // before it reads the source; done here by hand because no worker runs.)
    await a.runs.updateScan(runId, { status: 'running' });
    const later = await post(route(opsA.url, 'user-000002'));
    expect(later.status).toBe(202);
    expect(later.body.collapsed).toBe(false);
    expect(later.body.runId).not.toBe(runId);

    // Concurrent requests through two servers (two replicas) for another user: one run.
    const both = await Promise.all([
      post(route(opsA.url, 'user-000004')),
      post(route(opsB.url, 'user-000004')),
      post(route(opsA.url, 'user-000004')),
      post(route(opsB.url, 'user-000004')),
    ]);
    expect(both.map((r) => r.status)).toEqual([202, 202, 202, 202]);
    expect(new Set(both.map((r) => r.body.runId)).size).toBe(1);
    expect(both.filter((r) => r.body.collapsed === false)).toHaveLength(1);
    // The marker lives for the collapse window only.
    const ttl = await h.redis.pttl(a.layout.userSyncRequest(userKey('user-000004')));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(USER_SYNC_COLLAPSE_MS);
    const singles = (await a.runs.list(20)).filter((r) => r.kind === 'single-user');
    expect(singles).toHaveLength(3);
  });

  it('the run really writes the user to every sandbox target; once its scan has read the user, a repeat starts a new run', async () => {
    h = await startOpsHarness({ label: 'usync-write', env: { OPS_API_TOKEN: TOKEN } });
    const engine = await h.engine();
    const ops = await h.server(engine, { userSync: engine });
    await engine.startWorkers({ concurrency: 2 });
    const id = 'ou=sales/000013'; // an awkward id: percent-encoded slash and equals sign in the path
    const r = await post(route(ops.url, id));
    expect(r.status).toBe(202);
    const done = await runActions.waitForRun(engine, r.body.runId as string, { pollMs: 50 });
    expect(done.status).toBe('completed');
    for (const t of ['sunshine', 'zephr', 'prelude'] as const) {
      const o = done.targets[t]!.outcomes;
      expect(o.created + o.updated + o.unlinked, t).toBe(1);
    }
    const zephr = await inspect<{ sub: string }[]>(h.sandbox.urls.zephr, 'profiles');
    expect(zephr.map((z) => z.sub)).toEqual([id]);
    const sun = await inspect<{ profiles: { identifiers: { type: string; value: string }[] }[] }>(
      h.sandbox.urls.sunshine,
      'state',
    );
    expect(sun.profiles.flatMap((p) => p.identifiers.filter((i) => i.type === 'external_id'))).toEqual([
      { type: 'external_id', value: id },
    ]);
    const next = await post(route(ops.url, id));
    expect(next.status).toBe(202);
    expect(next.body.collapsed).toBe(false);
    expect(next.body.runId).not.toBe(r.body.runId);
  });

  it('its jobs overtake a running backfill in the same target queue', async () => {
    h = await startOpsHarness({
      label: 'usync-lane',
      users: 60,
      env: {
        OPS_API_TOKEN: TOKEN,
        PRELUDE_RATE_LIMIT: '5',
        PROFILE_SYNC_TEST_RATE_WINDOW_MS: '1000',
        RATE_LIMIT_MARGIN_MS: '0',
      },
    });
    const engine = await h.engine();
    const ops = await h.server(engine, { userSync: engine });
    await engine.startWorkers({ concurrency: 1 });
    const backfill = await runActions.startRun(engine, { kind: 'backfill', targets: ['prelude'] });
    await until(async () => {
      const b = await engine.runs.get(backfill);
      return b?.scan.status === 'done' && b.settled > 0 ? true : undefined;
    }, 'the backfill enqueued and writing');
    const r = await post(route(ops.url, 'user-000060'));
    expect(r.status).toBe(202);
    const done = await runActions.waitForRun(engine, r.body.runId as string, { pollMs: 50 });
    expect(done.status).toBe('completed');
    const during = (await engine.runs.get(backfill))!;
    // FIFO would have put its prelude job behind ~60 backfill jobs at 5 per second.
    expect(during.status).toBe('running');
    expect(during.settled).toBeLessThan(30);
    await runActions.abortRun(engine, backfill, 'test over');
  }, 60_000);
});

/** POST with the path exactly as given (fetch and URL would normalise `..` and `%2e`). */
async function rawPost(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const { request } = await import('node:http');
  const u = /^http:\/\/([^/]+)(\/.*)$/.exec(url)!;
  const [host, port] = u[1]!.split(':');
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), path: u[2], method: 'POST', headers: auth }, (res) => {
      let text = '';
      res.on('data', (c) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}
