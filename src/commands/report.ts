import type { Command } from 'commander';
import type { RunItem } from '../store/run-record.js';
import { parsePositiveInt } from './options.js';
import { formatItem, runHeadline, runSummaryJson, runWarnings, summaryTable } from './print/run-report.js';
import { withRunStore } from './runs.js';

export function registerReport(program: Command): void {
  program
    .command('report')
    .description(
      'Print one run: counts per target and outcome, then every change with its diff, retries and errors',
    )
    .argument('<runId>', "a run id, or 'latest'")
    .option('--json', 'JSON on stdout: the summary and the items')
    .option('--items <n>', 'at most n items (default 1000)')
    .action(async (ref: string, flags: { json?: boolean; items?: string }) => {
      const max = parsePositiveInt('--items', flags.items) ?? 1000;
      await withRunStore(async (runs) => {
        const id = ref === 'latest' ? await runs.latestId() : ref;
        const run = id ? await runs.get(id) : null;
        if (!run) {
          process.stderr.write(
            ref === 'latest' ? 'no runs recorded\n' : `no run ${ref} (see: profile-sync runs)\n`,
          );
          process.exitCode = 2;
          return;
        }
        const total = await runs.itemCount(run.id);
        const items: RunItem[] = await runs.items(run.id, 0, max);
        if (flags.json) {
          process.stdout.write(
            `${JSON.stringify({ ...runSummaryJson(run), itemCount: total, items }, null, 2)}\n`,
          );
          return;
        }
        const out = [runHeadline(run), '', summaryTable(run), ...runWarnings(run).map((w) => `\n${w}`)];
        if (items.length) {
          out.push(
            '',
            `changes, rejections and failures (${items.length} of ${total}${run.options.showPii ? '' : ', PII masked'}):`,
          );
          for (const i of items) out.push(...formatItem(i));
        }
        process.stdout.write(`${out.join('\n')}\n`);
      });
    });
}
