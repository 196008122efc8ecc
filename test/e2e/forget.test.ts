import { existsSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import * as runActions from '../../jobs/run-actions.js';
import { userKey } from '../../src/core/hashing.js';
import type { Engine } from '../../src/queue/engine.js';
import { CLI, runCli as cli } from '../helpers/cli.js';
import { keysOf } from '../helpers/redis.js';
import {
  type Harness,
  inspect,
  inspectPost,
  type SourceUserRow,
  startHarness,
} from '../integration/engine/harness.js';

/** Everything a key holds, as one text (its name included), whatever its type. */
async function dump(redis: Redis, key: string): Promise<string> {
  const type = await redis.type(key);
  const parts: string[] = [key];
  if (type === 'string') parts.push((await redis.get(key)) ?? '');
  else if (type === 'hash') parts.push(...Object.entries(await redis.hgetall(key)).flat());
  else if (type === 'list') parts.push(...(await redis.lrange(key, 0, -1)));
  else if (type === 'set') parts.push(...(await redis.smembers(key)));
  else if (type === 'zset') parts.push(...(await redis.zrange(key, '0', '-1')));
  else if (type === 'stream')
    for (const [id, fields] of (await redis.xrange(key, '-', '+')) as [string, string[]][])
      parts.push(id, ...fields);
  else parts.push(`(type ${type})`);
  return parts.join('\n');
}

/** Every key of the prefix (BullMQ's included) whose name or content holds one of the needles. */
async function traces(redis: Redis, prefix: string, needles: RegExp[]): Promise<string[]> {
  const hits: string[] = [];
  for (const key of await keysOf(redis, prefix)) {
    const text = await dump(redis, key);
    for (const n of needles) if (n.test(text)) hits.push(`${key} ~ ${n}`);
  }
  return hits;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** The id as a whole token: `user-000007` must not match inside `user-0000071`. */
const idToken = (id: string) => new RegExp(`(^|[^A-Za-z0-9._~-])${escapeRe(id)}($|[^A-Za-z0-9._~-])`);

async function run(engine: Engine, req: Parameters<typeof runActions.startRun>[1]) {
  return runActions.waitForRun(engine, await runActions.startRun(engine, req), { pollMs: 100 });
}

describe.skipIf(!existsSync(CLI))('profile-sync forget (erasure, issue 5)', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('leaves no trace of the user in any target or anywhere in Redis but the tombstone; a second forget is a no-op', async () => {
    h = await startHarness({ label: 'forget', sandbox: { users: 60 } });
    const engine = await h.engine();
    await engine.startWorkers({ concurrency: 4 });
    expect((await run(engine, { kind: 'backfill' })).status).toBe('completed');

    // A user known to every target, with an email and names no other user shares.
    const users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    const count = (v: string | null | undefined, f: 'firstName' | 'lastName') =>
      users.filter((u) => u[f] === v).length;
    const candidates = [];
    for (const u of users) {
      if (!u.email || !u.firstName || !u.lastName || u.firstName.length < 3 || u.lastName.length < 3)
        continue;
      if (count(u.firstName, 'firstName') !== 1 || count(u.lastName, 'lastName') !== 1) continue;
      if ((await engine.state.get('prelude', u.id)) === null) continue;
      candidates.push(u);
    }
    const me = candidates[0]!;
    const other = candidates[1]!;
    expect(me).toBeDefined();
    // Every place a user's data can sit in Redis:
    await engine.links!.import([{ sourceId: me.id, preludeUserId: me.id }]); // a Prelude link
    const email2 = `forget.me.${Date.now()}@example.org`;
    const last2 = `${me.lastName}-Zed`;
    await inspectPost(
      h.sandbox.urls.source,
      `users/${encodeURIComponent(me.id)}`,
      { email: email2 },
      'PATCH',
    );
    // an unmasked single-user run (options.users holds the id; items hold the new email)
    expect((await run(engine, { kind: 'single-user', users: [me.id], showPii: true })).status).toBe(
      'completed',
    );
    // a dead letter: Sunshine refuses this user's next write (400, permanent) and the job stays failed
    await inspectPost(
      h.sandbox.urls.source,
      `users/${encodeURIComponent(me.id)}`,
      { lastName: last2 },
      'PATCH',
    );
    h.sandbox.sims.sunshine.setFaults([
      { kind: 'status', status: 400, match: { query: { identifier: `identity:user:external_id:${me.id}` } } },
    ]);
    const failedRun = await run(engine, { kind: 'scheduled' });
    expect(failedRun.targets.sunshine!.outcomes.failed).toBe(1);
    h.sandbox.sims.sunshine.setFaults([]);
    expect((await engine.syncQueues.sunshine!.getFailed()).some((j) => j.data.userId === me.id)).toBe(true);
    // a dry run with a plan (plan lines), completed jobs retained by BullMQ, history entries
    await run(engine, { kind: 'backfill', dryRun: true, plan: true });
    expect((await engine.runs.history(me.id)).length).toBeGreaterThan(2);

    const needles = [
      idToken(me.id),
      new RegExp(escapeRe(me.email!), 'i'),
      new RegExp(escapeRe(email2), 'i'),
      new RegExp(escapeRe(me.firstName!)),
      new RegExp(escapeRe(me.lastName!)),
      new RegExp(escapeRe(userKey(me.id))),
    ];
    expect((await traces(h.redis, h.prefix, needles)).length).toBeGreaterThan(5);
    const otherBefore = await engine.runs.history(other.id);

    // The privacy request: the user left the identity service, then forget.
    await inspectPost(h.sandbox.urls.source, 'users/remove', { ids: [me.id] });
    const env = { ...h.env, LOG_LEVEL: 'error' };
    const first = await cli(['forget', me.id], env);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/sunshine\s+(deleted|stripped)/);
    expect(first.stdout).toMatch(/zephr\s+cleared/);
    expect(first.stdout).toMatch(/prelude\s+cleared/);
    expect(first.stdout).toContain('redis: no trace left but the tombstone');

    // Targets: nothing of the user is left (sandbox state).
    const sun = await inspect<{ identifiers: { type: string; value: string }[] }[]>(
      h.sandbox.urls.sunshine,
      'profiles',
    );
    const zephr = await inspect<{ sub: string; profile: Record<string, unknown> }[]>(
      h.sandbox.urls.zephr,
      'profiles',
    );
    const prelude = await inspect<{
      apps: Record<string, { profiles: Record<string, Record<string, string>> }>;
    }>(h.sandbox.urls.prelude, 'state');
    for (const [name, state] of [
      ['sunshine', sun],
      ['zephr', zephr],
      ['prelude', prelude],
    ] as const) {
      const text = JSON.stringify(state);
      for (const n of needles.slice(1, 5)) expect(n.test(text), `${name} still holds ${n}`).toBe(false);
    }
    expect(sun.some((p) => p.identifiers.some((i) => i.value === me.id))).toBe(false);
    expect(zephr.find((z) => z.sub === me.id)?.profile ?? {}).toEqual({});
    const pp = prelude.apps[h.env.PRELUDE_APP_ID!]!.profiles[me.id] ?? {};
    for (const v of Object.values(pp)) expect(v).toBe('');

    // Redis: every key of the prefix, BullMQ's included, every value: only the tombstone remains.
    const left = await traces(h.redis, h.prefix, needles);
    expect(left.filter((t) => !t.startsWith(`{${h!.prefix}}:tombstones `))).toEqual([]);
    const tomb = await h.redis.hgetall(`{${h.prefix}}:tombstones`);
    const [stone] = Object.values(tomb).map((v) => JSON.parse(v) as Record<string, unknown>);
    expect(stone).toMatchObject({ targets: { zephr: 'cleared', prelude: 'cleared' }, times: 1 });
    expect(JSON.stringify(tomb)).not.toMatch(idToken(me.id));
    // Nobody else lost anything.
    expect(await engine.runs.history(other.id)).toEqual(otherBefore);
    expect(await engine.state.get('sunshine', other.id)).not.toBeNull();

    // A second forget: a no-op that says so, no request sent.
    for (const t of ['sunshine', 'zephr', 'prelude'] as const) h.sandbox.sims[t].resetCounters();
    const second = await cli(['forget', me.id, '--json'], env);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ noop: true, ok: true });
    const text = await cli(['forget', me.id], env);
    expect(text.stdout).toContain('was already forgotten');
    for (const t of ['sunshine', 'zephr', 'prelude'] as const)
      expect(h.sandbox.sims[t].counters().total).toBe(0);
  }, 180_000);

  it("Sunshine: a profile that also carries another system's identifier is stripped (seed 001), not deleted", async () => {
    h = await startHarness({ label: 'forget-strip', sandbox: { users: 10 } });
    const engine = await h.engine();
    await engine.startWorkers({ concurrency: 2 });
    await run(engine, { kind: 'backfill' });
    const me = (await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users')).find((u) => u.email)!;
    type Row = {
      id: string;
      name?: string;
      identifiers: { type: string; value: string }[];
      attributes: Record<string, unknown>;
    };
    const mine = (await inspect<Row[]>(h.sandbox.urls.sunshine, 'profiles')).find((p) =>
      p.identifiers.some((i) => i.type === 'external_id' && i.value === me.id),
    )!;
    await inspectPost(
      h.sandbox.urls.sunshine,
      `profiles/${mine.id}`,
      {
        identifiers: [...mine.identifiers, { type: 'member_id', value: 'M-778' }],
        attributes: { ...mine.attributes, loyalty: 'gold' },
      },
      'PATCH',
    );
    const out = await cli(['forget', me.id, '--targets', 'sunshine'], { ...h.env, LOG_LEVEL: 'error' });
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/sunshine\s+stripped\s+2/);
    expect(out.stdout).toMatch(/except the state of zephr(, prelude)? \(not in --targets/);
    const again = await cli(['forget', me.id, '--targets', 'sunshine'], { ...h.env, LOG_LEVEL: 'error' });
    expect(again.stdout).toContain('was already forgotten');
    expect(await engine.state.get('zephr', me.id)).not.toBeNull();
    const after = await inspect<Row>(h.sandbox.urls.sunshine, `profiles/${mine.id}`);
    // The other system's data survives; nothing of the user does.
    expect(after.identifiers).toEqual([{ type: 'member_id', value: 'M-778' }]);
    expect(after.attributes).toEqual({ loyalty: 'gold' });
    const text = JSON.stringify(after);
    for (const v of [me.id, me.email!, me.firstName, me.lastName].filter(
      (x): x is string => !!x && x.length > 2,
    ))
      expect(text.toLowerCase()).not.toContain(v.toLowerCase());
  }, 120_000);

  it("issue 8.7: forgetting ann@example.com leaves joann@example.com's records alone (PII recorded)", async () => {
    h = await startHarness({ label: 'forget-email', sandbox: { users: 10 }, env: { RECORD_PII: 'true' } });
    const engine = await h.engine();
    await engine.startWorkers({ concurrency: 2 });
    const [ann, joann] = (await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users')).slice(0, 2);
    const emails = [
      [ann!, 'ann@example.com'],
      [joann!, 'joann@example.com'],
    ] as const;
    for (const [u, email] of emails)
      await inspectPost(h.sandbox.urls.source, `users/${encodeURIComponent(u.id)}`, { email }, 'PATCH');
    // RECORD_PII: the run items and history hold both addresses unmasked.
    expect((await run(engine, { kind: 'backfill' })).status).toBe('completed');
    const joannBefore = await engine.runs.history(joann!.id);
    expect(JSON.stringify(joannBefore)).toContain('joann@example.com');
    const joannState = await engine.state.get('zephr', joann!.id);

    await inspectPost(h.sandbox.urls.source, 'users/remove', { ids: [ann!.id] });
    const out = await cli(['forget', ann!.id], { ...h.env, LOG_LEVEL: 'error' });
    expect(out.code).toBe(0);

    // Ann is gone; Joann's history (unmasked items), state and profiles are untouched.
    expect(await engine.runs.history(ann!.id)).toEqual([]);
    expect(await engine.runs.history(joann!.id)).toEqual(joannBefore);
    expect(await engine.state.get('zephr', joann!.id)).toEqual(joannState);
    const items = await engine.runs.items((await engine.runs.latestId())!);
    const text = JSON.stringify(items);
    expect(text).toContain('joann@example.com');
    expect(text).not.toMatch(/(^|[^a-z])ann@example\.com/);
  }, 120_000);

  it('a target that fails: exit 1, its state kept for the re-run; the re-run finishes the job', async () => {
    h = await startHarness({ label: 'forget-fail', sandbox: { users: 20 } });
    const engine = await h.engine();
    await engine.startWorkers({ concurrency: 4 });
    await run(engine, { kind: 'backfill' });
    const id = (await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users'))[3]!.id;
    h.sandbox.sims.zephr.setFaults([{ kind: 'status', status: 400 }]);
    const env = { ...h.env, LOG_LEVEL: 'silent' };
    const failed = await cli(['forget', id, '--json'], env);
    expect(failed.code).toBe(1);
    const r = JSON.parse(failed.stdout) as { ok: boolean; targets: Record<string, { ok: boolean }> };
    expect(r.ok).toBe(false);
    expect(r.targets.zephr!.ok).toBe(false);
    expect(r.targets.sunshine!.ok).toBe(true);
    expect(await engine.state.get('zephr', id)).not.toBeNull();
    expect(await engine.state.get('sunshine', id)).toBeNull();
    h.sandbox.sims.zephr.setFaults([]);
    const again = await cli(['forget', id], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/zephr\s+cleared/);
    expect(again.stderr).toContain('the source still returns user');
    expect(await engine.state.get('zephr', id)).toBeNull();
  }, 120_000);
});
