import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import * as runActions from '../../../jobs/run-actions.js';
import { CLI, runCli as cli } from '../../helpers/cli.js';
import {
  type Harness,
  inspect,
  inspectPost,
  type SourceUserRow,
  startHarness,
  writeCount,
} from '../engine/harness.js';

interface SunshineProfile {
  identifiers: { type: string; value: string }[];
  source: string;
}

async function sunshineCount(h: Harness): Promise<number> {
  const all = await inspect<SunshineProfile[]>(h.sandbox.urls.sunshine, 'profiles');
  return all.filter((p) => p.source === 'identity').length;
}

describe.skipIf(!existsSync(CLI))('the deletion safety brake and --dry-run (issue 5)', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('a source that returns 0 users trips the brake: run held, nobody removed, exit 1; --confirm-deletes then removes (users back in the source kept)', async () => {
    h = await startHarness({
      label: 'del-brake',
      sandbox: { users: 200 },
      env: { SUNSHINE_ON_DELETE: 'delete', ZEPHR_ON_DELETE: 'clear' },
    });
    const env = { ...h.env, LOG_LEVEL: 'error' };
    const first = await cli(['backfill', '--targets', 'sunshine,zephr', '--json'], env);
    expect(first.code).toBe(0);
    expect(await sunshineCount(h)).toBe(200);
    const everyone = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    await inspectPost(h.sandbox.urls.source, 'users/remove', { share: 1 });
    expect(await inspect<unknown[]>(h.sandbox.urls.source, 'users')).toHaveLength(0);
    h.sandbox.sims.sunshine.resetCounters();
    h.sandbox.sims.zephr.resetCounters();

    const held = await cli(['backfill', '--targets', 'sunshine,zephr', '--json'], env);
    expect(held.code).toBe(1);
    const summary = JSON.parse(held.stdout) as {
      runId: string;
      status: string;
      targets: Record<string, { removed: number; orphaned: number }>;
      deletions: { held: string; targets: Record<string, { known: number; gone: number }> };
    };
    expect(summary.status).toBe('held');
    expect(summary.targets.sunshine).toMatchObject({ removed: 0, orphaned: 200 });
    expect(summary.targets.zephr).toMatchObject({ removed: 0, orphaned: 200 });
    expect(summary.deletions.targets.sunshine).toMatchObject({ known: 200, gone: 200 });
    expect(summary.deletions.held).toContain('MAX_DELETE_RATE 5%');
    expect(held.stderr).toContain('DELETIONS HELD by the safety brake');
    expect(held.stderr).toContain(`profile-sync backfill --confirm-deletes ${summary.runId}`);
    // The alert: an error-level log line with a stable event name.
    const alert = held.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { event?: string; level?: number; runId?: string })
      .find((l) => l.event === 'deletions.held');
    expect(alert).toMatchObject({ runId: summary.runId, level: 50 });
    // Nothing was removed anywhere.
    expect(writeCount(h.sandbox, 'sunshine')).toBe(0);
    expect(writeCount(h.sandbox, 'zephr')).toBe(0);
    expect(await sunshineCount(h)).toBe(200);

    const runs = await cli(['runs'], env);
    expect(runs.stdout).toMatch(new RegExp(`${summary.runId}\\s+backfill\\s+held`));
    // runs shows issue 5's columns: removed 0, orphaned 400 (200 per target).
    expect(runs.stdout.split('\n')[0]).toMatch(/rejected\s+removed\s+orphaned$/);
    expect(runs.stdout).toMatch(new RegExp(`${summary.runId}\\s+backfill\\s+held.*\\s0\\s+400$`, 'm'));
    const report = await cli(['report', summary.runId], env);
    expect(report.stdout).toContain('DELETIONS HELD');
    expect(report.stdout).toContain('removal held by the safety brake');

    // One user comes back before the operator confirms: re-checked, kept.
    const back = everyone[0]!;
    await inspectPost(h.sandbox.urls.source, 'users', back);
    const confirm = await cli(['backfill', '--confirm-deletes', summary.runId, '--json'], env);
    expect(confirm.stderr).toContain('398 held removals re-driven; 1 users are back in the source');
    expect(confirm.code).toBe(0);
    const done = JSON.parse(confirm.stdout) as typeof summary;
    expect(done.status).toBe('completed');
    expect(done.targets.sunshine!.removed).toBe(199);
    expect(done.targets.zephr!.removed).toBe(200 - 1);
    expect(await sunshineCount(h)).toBe(1);
    const zephr = await inspect<{ sub: string; profile: Record<string, unknown> }[]>(
      h.sandbox.urls.zephr,
      'profiles',
    );
    for (const z of zephr) if (z.sub !== back.id) expect(z.profile).toEqual({});

    // Confirming twice is refused.
    const again = await cli(['backfill', '--confirm-deletes', summary.runId], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('has no held deletions');
  }, 180_000);

  it('MAX_DELETES holds a run that removes more users than allowed, whatever the share', async () => {
    h = await startHarness({
      label: 'del-maxdeletes',
      sandbox: { users: 100 },
      env: { SUNSHINE_ON_DELETE: 'delete', MAX_DELETE_RATE: '1', MAX_DELETES: '5' },
    });
    const engine = await h.engine({ only: ['sunshine'] });
    await engine.startWorkers({ concurrency: 8 });
    await runActions.waitForRun(engine, await runActions.startRun(engine, { kind: 'backfill' }), {
      pollMs: 100,
    });
    await inspectPost(h.sandbox.urls.source, 'users/remove', { share: 0.06 });
    const run = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'scheduled' }),
      { pollMs: 100 },
    );
    expect(run.status).toBe('held');
    expect(run.deletions?.held).toContain('sunshine: 6 removals > MAX_DELETES 5');
    expect(run.targets.sunshine!.outcomes.removed).toBe(0);
    expect(await sunshineCount(h)).toBe(100);
  }, 120_000);

  it('a confirmed removal never deletes a profile written after the held run started (the user came back meanwhile)', async () => {
    h = await startHarness({
      label: 'del-back',
      sandbox: { users: 50 },
      env: { SUNSHINE_ON_DELETE: 'delete', MAX_DELETES: '0' },
    });
    const engine = await h.engine({ only: ['sunshine'] });
    await engine.startWorkers({ concurrency: 4 });
    await runActions.waitForRun(engine, await runActions.startRun(engine, { kind: 'backfill' }), {
      pollMs: 100,
    });
    const users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    const [a, b] = [users[1]!, users[2]!];
    await inspectPost(h.sandbox.urls.source, 'users/remove', { ids: [a.id, b.id] });
    const held = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'scheduled' }),
      { pollMs: 100 },
    );
    expect(held.status).toBe('held');
    // b comes back with a new email and is written again, then leaves again before the confirm.
    await inspectPost(h.sandbox.urls.source, 'users', { ...b, email: 'back.again@example.org' });
    const sync = await runActions.waitForRun(
      engine,
      await runActions.startRun(engine, { kind: 'single-user', users: [b.id] }),
      {
        pollMs: 100,
      },
    );
    expect(sync.targets.sunshine!.outcomes.updated).toBe(1);
    await inspectPost(h.sandbox.urls.source, 'users/remove', { ids: [b.id] });
    const c = await runActions.confirmDeletes(engine, held.id);
    expect(c).toMatchObject({ removals: 2, returned: 0 });
    const done = await runActions.waitForRun(engine, held.id, { pollMs: 100 });
    expect(done.status).toBe('completed');
    expect(done.targets.sunshine!.outcomes.removed).toBe(1);
    // b: not removed (the scan counted the 48 others unchanged before; b is the one more).
    expect(done.targets.sunshine!.outcomes.unchanged).toBe(held.targets.sunshine!.outcomes.unchanged + 1);
    const items = await engine.runs.items(held.id);
    expect(items.find((i) => i.userId === b.id && i.outcome === 'unchanged')?.reason).toContain(
      'back in the source',
    );
    expect(await engine.state.get('sunshine', a.id)).toBeNull();
    expect(await engine.state.get('sunshine', b.id)).not.toBeNull();
    expect(await sunshineCount(h)).toBe(49);
  }, 120_000);

  it('--dry-run shows who would be removed (masked), in the summary and the plan, and sends nothing', async () => {
    h = await startHarness({
      label: 'del-dry',
      sandbox: { users: 200 },
      env: { SUNSHINE_ON_DELETE: 'delete' },
    });
    const env = { ...h.env, LOG_LEVEL: 'error' };
    expect((await cli(['backfill', '--targets', 'sunshine,prelude'], env)).code).toBe(0);
    const { removed } = await inspectPost<{ removed: string[] }>(h.sandbox.urls.source, 'users/remove', {
      share: 0.02,
      seed: 5,
    });
    expect(removed).toHaveLength(4);
    const users = await inspect<SourceUserRow[]>(h.sandbox.urls.source, 'users');
    expect(users).toHaveLength(196);
    h.sandbox.sims.sunshine.resetCounters();
    const dir = mkdtempSync(join(tmpdir(), 'ps-del-'));
    const plan = join(dir, 'plan.jsonl');
    const dry = await cli(['backfill', '--targets', 'sunshine,prelude', '--dry-run', '--plan', plan], env);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('users who left the source and would be removed (4, PII masked):');
    for (const id of removed) expect(dry.stdout).toContain(`sunshine ${id}  last written: {`);
    // Prelude's policy is ignore: its users who left are orphaned, not listed as removals.
    expect(dry.stdout).not.toMatch(/prelude user-\d+ {2}last written/);
    // Masked: no email or full name of the users who left appears.
    const lines = readFileSync(plan, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const removals = lines.filter((l) => l.method === 'REMOVE');
    expect(removals.map((l) => l.userId).sort()).toEqual([...removed].sort());
    for (const l of removals) {
      expect(l.target).toBe('sunshine');
      const last = l.lastWritten as Record<string, string>;
      expect(last['identifiers.external_id']).toBe(l.userId);
      if (last['identifiers.email']) expect(last['identifiers.email']).toMatch(/^.\*\*\*@/);
      if (last.name) expect(last.name).toMatch(/^.\*\*\*$/);
    }
    expect(writeCount(h.sandbox, 'sunshine')).toBe(0);
    expect(await sunshineCount(h)).toBe(200);

    // A dry run of a source gone empty says the brake would hold (and still sends nothing).
    await inspectPost(h.sandbox.urls.source, 'users/remove', { share: 1 });
    const empty = await cli(['backfill', '--targets', 'sunshine', '--dry-run'], env);
    expect(empty.stderr).toContain('a real run would be HELD by the safety brake');
    expect(writeCount(h.sandbox, 'sunshine')).toBe(0);
  }, 180_000);
});
