import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import { createLogger } from '../../../src/log.js';
import type { Engine } from '../../../src/queue/engine.js';
import { RedisLayout } from '../../../src/store/redis-layout.js';
import { assertBuilt, runCli } from '../../helpers/cli.js';
import {
  type Harness,
  inspect,
  inspectPost,
  redisText,
  type SourceUserRow,
  startHarness,
} from './harness.js';

/**
 * Issue 12.7: a masked email change shows that something changed. Run records (and so `report`,
 * `history`, the demo) carry `u***@example.org#3fa2`: a keyed fingerprint, the key per install in Redis.
 */
describe('masked diffs carry a keyed fingerprint', () => {
  let h: Harness;
  let engine: Engine;
  const logs: string[] = [];

  beforeAll(async () => {
    assertBuilt();
    h = await startHarness({ label: 'maskfp', sandbox: { users: 12 } });
    const sink = new Writable({
      write(chunk, _enc, cb) {
        logs.push(String(chunk));
        cb();
      },
    });
    engine = await h.engine({ logger: createLogger({ level: 'debug', destination: sink }) });
    await engine.startWorkers({ concurrency: 4 });
    const first = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'backfill' }),
      { pollMs: 50 },
    );
    expect(first.status).toBe('completed');
  });
  afterAll(async () => {
    await h.close();
  });

  async function changeEmail(id: string, email: string): Promise<string> {
    await inspectPost(h.sandbox.urls.source, `users/${encodeURIComponent(id)}`, { email }, 'PATCH');
    const run = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'single-user', users: [id], targets: ['sunshine'] }),
      { pollMs: 50 },
    );
    expect(run.targets.sunshine!.outcomes.updated).toBe(1);
    return run.id;
  }

  it('two different emails mask differently, one email masks the same in two runs, the key never shows', async () => {
    const users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    const user = users.find((u) => u.email)!;
    // Same first letter, same domain: the plain mask would read `u***@example.org` on both sides.
    const run1 = await changeEmail(user.id, 'u.one@example.org');
    const run2 = await changeEmail(user.id, 'u.two@example.org');
    const [item1] = await engine.runs.items(run1);
    const [item2] = await engine.runs.items(run2);
    const d1 = item1!.diff!['identifiers.email']!;
    const d2 = item2!.diff!['identifiers.email']!;
    const MASK = /^u\*\*\*@example\.org#[0-9a-f]{4}$/;
    expect(d2.from).toMatch(MASK);
    expect(d2.to).toMatch(MASK);
    expect(d2.from).not.toBe(d2.to);
    // The address run 1 wrote is the one run 2 replaced: masked identically in both runs.
    expect(d1.to).toBe(d2.from);

    const maskKey = await h.redis.get(new RedisLayout(h.prefix).maskKey());
    expect(maskKey).toMatch(/^[0-9a-f]{64}$/);

    const report = await runCli(['report', run2], h.env);
    expect(report.code).toBe(0);
    expect(report.stdout).toContain(`identifiers.email: "${d2.from}" -> "${d2.to}"`);
    const json = await runCli(['report', run2, '--json'], h.env);
    const history = await runCli(['history', user.id], h.env);
    const outputs = [report, json, history].flatMap((r) => [r.stdout, r.stderr]).join('\n');
    expect(history.stdout).toContain(String(d2.to));
    for (const text of [outputs, logs.join('')]) {
      expect(text).not.toContain(maskKey!);
      expect(text).not.toContain('u.one@example.org');
      expect(text).not.toContain('u.two@example.org');
    }
    expect(logs.length).toBeGreaterThan(0);
    // In Redis the key sits under its own key only, never in a run record, job or log.
    const redisAll = await redisText(h.redis, h.prefix);
    expect(redisAll.split(maskKey!).length - 1).toBe(1);

    // `forget` erases the user's items and history: their fingerprints go with them; the key stays.
    const forget = await runCli(['forget', user.id], h.env);
    expect(forget.code).toBe(0);
    const after = await redisText(h.redis, h.prefix);
    for (const masked of [d1.from, d2.from, d2.to]) expect(after).not.toContain(String(masked));
    expect(await h.redis.get(new RedisLayout(h.prefix).maskKey())).toBe(maskKey);
  }, 180_000); // four CLI processes, a few seconds each on a loaded machine

  it('RECORD_PII-style runs (showPii) keep raw values, without fingerprints', async () => {
    const users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    const user = users.filter((u) => u.email)[1]!;
    await inspectPost(
      h.sandbox.urls.source,
      `users/${encodeURIComponent(user.id)}`,
      { email: 'raw.value@example.org' },
      'PATCH',
    );
    const run = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, {
        kind: 'single-user',
        users: [user.id],
        targets: ['sunshine'],
        showPii: true,
      }),
      { pollMs: 50 },
    );
    const [item] = await engine.runs.items(run.id);
    expect(item!.diff!['identifiers.email']!.to).toBe('raw.value@example.org');
  });
});
