import type { Command } from 'commander';
import { JOBS } from '../../jobs/index.js';
import { loadConfig } from '../config/load.js';
import { ConfigError } from '../core/config-error.js';
import { type ForgetReport, forgetUser } from '../pipeline/erasure.js';
import { Engine } from '../queue/engine.js';
import { parseTargets } from './options.js';
import { table } from './print/run-report.js';
import { requireUserId } from './user-id.js';

/**
 * `profile-sync forget <userId> [--targets ...] [--json]` (issue 5): erasure on request. Removes the
 * user from every enabled target, erases every trace in Redis, keeps a tombstone (sha256 of the id,
 * time, targets, actions), prints what it did. Idempotent: a second run says so and sends nothing.
 * Exit 0 when every target succeeded, 1 when one failed (run it again), 2 for a usage error.
 */
export function registerForget(program: Command): void {
  program
    .command('forget')
    .description(
      'Erase one user everywhere (privacy request): delete/clear in every target, drop every trace in Redis but a tombstone',
    )
    .argument('<userId>', 'source user id')
    .option('--targets <list>', 'only these targets (default every enabled one)')
    .option('--json', 'JSON on stdout')
    .action(async (userId: string, flags: { targets?: string; json?: boolean }) => {
      requireUserId(userId);
      const only = parseTargets(flags.targets);
      const config = loadConfig();
      const engine = await Engine.create({ jobs: JOBS, config });
      try {
        const targets = only ?? engine.targets;
        const off = targets.filter((t) => !engine.targets.includes(t));
        if (off.length) throw new ConfigError(`--targets: ${off.join(', ')} not enabled`);
        const report = await forgetUser(engine.erasureDeps(), userId, targets);
        if (flags.json) process.stdout.write(`${JSON.stringify({ userId, ...report }, null, 2)}\n`);
        else process.stdout.write(`${formatForget(userId, report)}\n`);
        if (report.stillInSource)
          process.stderr.write(
            `!! the source still returns user ${userId}: the next sync will create them again. Delete them in the identity service first, then run forget again.\n`,
          );
        process.exitCode = report.ok ? 0 : 1;
      } finally {
        await engine.close();
      }
    });
}

export function formatForget(userId: string, r: ForgetReport): string {
  if (r.noop) {
    const prev = r.previous!;
    const actions = Object.entries(prev.targets)
      .map(([t, a]) => `${t} ${a}`)
      .join(', ');
    return `user ${userId} was already forgotten at ${new Date(prev.at).toISOString()} (${actions}): nothing left to erase, no request sent`;
  }
  const lines = [`forget user ${userId} (tombstone sha256 ${r.userIdHash.slice(0, 16)}...):`];
  const rows: string[][] = [['target', 'result', 'requests']];
  for (const [t, res] of Object.entries(r.targets)) {
    if (res.ok) rows.push([t, res.action, String(res.requests)]);
    else rows.push([t, `FAILED: ${res.error}`, '-']);
  }
  lines.push(table(rows, 2));
  const erased = Object.entries(r.erased)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  lines.push(`redis: erased ${erased || 'nothing (no trace found)'}`);
  if (r.remaining.length)
    lines.push(`redis: still holding the user (run forget again): ${r.remaining.join(', ')}`);
  else if (r.untouched?.length)
    lines.push(
      `redis: no trace left but the tombstone, except the state of ${r.untouched.join(', ')} (not in --targets; forget them too to erase it)`,
    );
  else lines.push('redis: no trace left but the tombstone (id hash, time, targets, actions)');
  if (r.sourceError) lines.push(`source: could not check whether the user is still there (${r.sourceError})`);
  if (!r.ok) lines.push('!! a target failed: fix it and run forget again (it is safe to repeat)');
  return lines.join('\n');
}
