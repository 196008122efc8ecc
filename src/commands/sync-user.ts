import type { Command } from 'commander';
import * as runActions from '../../jobs/run-actions.js';
import { loadConfig } from '../config/load.js';
import { parseTargets } from './options.js';
import { printRun } from './print/print-run.js';
import { formatItem } from './print/run-report.js';
import { requireUserId } from './user-id.js';
import { withEngine } from './with-engine.js';

export function registerSyncUser(program: Command): void {
  program
    .command('sync-user')
    .description('Sync one user now into every enabled target (ahead of any backfill) and print the diff')
    .argument('<userId>', 'source user id')
    .option('--targets <list>', 'only these targets')
    .option('--full', 'read the targets first and repair drift')
    .option('--dry-run', 'show the diff, write nothing')
    .option('--show-pii', 'show and store the diff unmasked')
    .option('--json', 'JSON on stdout')
    .action(
      async (
        userId: string,
        flags: { targets?: string; full?: boolean; dryRun?: boolean; showPii?: boolean; json?: boolean },
      ) => {
        requireUserId(userId);
        const targets = parseTargets(flags.targets);
        const config = loadConfig();
        await withEngine(config, targets, async (engine, onStart) => {
          await engine.startWorkers({ concurrency: 1 });
          const runId = await runActions.startRun(engine, {
            kind: 'single-user',
            users: [userId],
            ...(targets ? { targets } : {}),
            full: Boolean(flags.full),
            dryRun: Boolean(flags.dryRun),
            ...(flags.showPii ? { showPii: true } : {}),
          });
          onStart(runId);
          const run = await runActions.waitForRun(engine, runId, { pollMs: 100 });
          const items = await engine.runs.items(runId);
          if (!flags.json) {
            const lines = [`user ${userId}:`];
            for (const [t, c] of Object.entries(run.targets)) {
              const outcome = Object.entries(c.outcomes).find(([, n]) => n > 0)?.[0] ?? 'not processed';
              const mine = items.filter((i) => i.target === t);
              if (mine.length) for (const i of mine) lines.push(...formatItem(i));
              else lines.push(`  ${t} ${userId}: ${outcome}`);
            }
            process.stdout.write(`${lines.join('\n')}\n\n`);
          }
          printRun(run, { json: flags.json, config, extra: { items } });
        });
      },
    );
}
