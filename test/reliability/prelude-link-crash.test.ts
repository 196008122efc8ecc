import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { createLinkStore } from '../../src/store/links.js';
import { cleanPrefix, REDIS_URL, redisClient, testPrefix } from '../helpers/redis.js';
import { inspect, type SourceUserRow } from '../integration/engine/harness.js';
import { assertBuilt, type CliProcess, spawnCli, waitFor } from './processes.js';

/**
 * Issue 10 "crash test": a backfill SIGKILLed during its batch_lookups, then run again: every user
 * Prelude knows by external_id is linked once (no duplicate link, no link lost) and written, and no
 * user is written twice beyond the PATCHes in flight at the kill.
 */
describe('reliability: a backfill killed during Prelude lookups', () => {
  let sandbox: Sandbox;
  let redis: Redis;
  const prefix = testPrefix('plcrash');
  const procs: CliProcess[] = [];

  beforeAll(async () => {
    assertBuilt();
    sandbox = await startSandbox({ port: 0, users: 1000, rateLimit: null, preludeIds: 'usr' });
    redis = redisClient();
  }, 120_000);
  afterAll(async () => {
    for (const p of procs) p.kill();
    await Promise.all(procs.map((p) => p.exited));
    await sandbox?.close();
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  const env = () => ({
    ...sandbox.env,
    REDIS_URL,
    PROFILE_SYNC_PREFIX: prefix,
    LOG_LEVEL: 'warn',
    PRELUDE_RATE_LIMIT: '100000',
    SYNC_CONCURRENCY: '4',
  });

  function count(route: RegExp): number {
    let n = 0;
    for (const [r, byStatus] of Object.entries(sandbox.sims.prelude.counters().byRoute))
      if (route.test(r)) for (const v of Object.values(byStatus)) n += v;
    return n;
  }

  it('SIGKILL in the middle of the lookups, then a second backfill: every link once, every user written', async () => {
    // Each lookup answers 300 ms late, so the kill lands among them (the second chunk's, after some PATCHes).
    sandbox.sims.prelude.setFaults([
      { kind: 'latency', rate: 1, latencyMs: 300, match: { pathRegex: 'batch_lookup' } },
    ]);
    const first = spawnCli(['backfill', '--targets', 'prelude'], env());
    procs.push(first);
    await waitFor('7 lookups answered', () => count(/batch_lookup/) >= 7, 120_000, 20);
    first.kill();
    await first.exited;
    const lookupsBefore = count(/batch_lookup/);
    expect(lookupsBefore).toBeLessThan(10);
    const links = createLinkStore(redis, prefix);
    const linkedAtKill = await links.count();
    sandbox.sims.prelude.setFaults([]);

    const second = spawnCli(['backfill', '--targets', 'prelude', '--json'], env());
    procs.push(second);
    const end = await second.exited;
    expect(end.code, second.lines.slice(-20).join('\n')).toBe(0);

    const source = await inspect<SourceUserRow[]>(sandbox.urls.source, 'users');
    const prelude = (
      await inspect<{ users: { id: string; external_id?: string }[] }>(sandbox.urls.prelude, 'users')
    ).users;
    const byExt = new Map(prelude.filter((u) => u.external_id).map((u) => [u.external_id!, u.id]));
    const expected = new Map(source.filter((s) => byExt.has(s.id)).map((s) => [s.id, byExt.get(s.id)!]));
    const table = new Map<string, string>();
    for await (const [k, v] of links.entries()) table.set(k, v);
    expect(table).toEqual(expected); // none lost, none wrong
    expect(new Set(table.values()).size).toBe(table.size); // no Prelude user linked twice
    expect(linkedAtKill).toBeLessThanOrEqual(table.size);

    // Every linked user holds its profile.
    const byId = new Map(source.map((s) => [s.id, s]));
    for (const [sourceId, usr] of expected) {
      const got = await inspect<{ profile: Record<string, string> }>(
        sandbox.urls.prelude,
        `profiles/${encodeURIComponent(usr)}`,
      );
      const s = byId.get(sourceId)!;
      if (typeof s.firstName === 'string') expect(got.profile.first_name).toBe(s.firstName);
    }
    // PATCHes: one per linked user, plus at most the ones in flight when the process died.
    const patches = count(/^PATCH /);
    expect(patches).toBeGreaterThanOrEqual(expected.size);
    expect(patches).toBeLessThanOrEqual(expected.size + 4);
    // Links are stored per lookup batch: the kill keeps what the answered lookups found, and the second
    // run looks up only the users still without a link (100 per request).
    expect(linkedAtKill).toBeGreaterThan(0);
    expect(count(/batch_lookup/) - lookupsBefore).toBeLessThanOrEqual(
      // + 1: the lookup on the wire when the process died, answered (and counted) after the kill.
      Math.ceil((source.length - linkedAtKill) / 100) + 1,
    );
  }, 300_000);
});
