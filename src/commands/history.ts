import type { Command } from 'commander';
import { formatHistory } from './print/run-report.js';
import { withRunStore } from './runs.js';
import { requireUserId } from './user-id.js';

export function registerHistory(program: Command): void {
  program
    .command('history')
    .description(
      "One user's timeline across runs and targets: each change, its diff, its job, the requests and the outcome",
    )
    .argument('<userId>', 'source user id')
    .option('--json', 'JSON on stdout')
    .action(async (userId: string, flags: { json?: boolean }) => {
      requireUserId(userId);
      await withRunStore(async (runs) => {
        const entries = await runs.history(userId);
        if (flags.json) process.stdout.write(`${JSON.stringify({ userId, entries }, null, 2)}\n`);
        else process.stdout.write(`${formatHistory(userId, entries)}\n`);
      });
    });
}
