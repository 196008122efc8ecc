import type { Command } from 'commander';
import * as runActions from '../../jobs/run-actions.js';
import { loadConfig } from '../config/load.js';
import { ConfigError } from '../core/config-error.js';
import { TARGET_IDS } from '../core/targets.js';
import { parseTargets } from './options.js';
import { printRun } from './print/print-run.js';
import { createProgressReporter } from './print/progress.js';
import { withEngine } from './with-engine.js';

export function registerRetryFailed(program: Command): void {
  program
    .command('retry-failed')
    .description(
      'Re-drive the dead letters (failed sync jobs) as a new run; replays never duplicate a profile',
    )
    .option('--run <id>', 'only the failed jobs of this run')
    .option('--target <t>', 'only this target')
    .option('--enqueue-only', 'enqueue for a running daemon and exit')
    .option('--json', 'JSON on stdout')
    .action(async (flags: { run?: string; target?: string; enqueueOnly?: boolean; json?: boolean }) => {
      if (flags.target !== undefined) {
        const t = flags.target.trim();
        if (t.includes(',')) throw new ConfigError('--target takes one target');
        if (!(TARGET_IDS as readonly string[]).includes(t))
          throw new ConfigError(
            `--target: unknown target '${flags.target}'; use one of ${TARGET_IDS.join(', ')}`,
          );
      }
      if (flags.run !== undefined && flags.run.trim() === '') throw new ConfigError('--run: give a run id');
      const target = parseTargets(flags.target)?.[0];
      const config = loadConfig();
      await withEngine(config, target ? [target] : undefined, async (engine, onStart) => {
        if (!flags.enqueueOnly) await engine.startWorkers();
        const { runId, jobs, malformed } = await runActions.retryFailed(engine, {
          ...(flags.run ? { runId: flags.run } : {}),
          ...(target ? { target } : {}),
        });
        for (const m of malformed)
          process.stderr.write(
            `!! ${m.target} failed job ${m.jobId} skipped: ${m.error} (malformed; left in the failed set)\n`,
          );
        if (!runId) {
          if (flags.json) process.stdout.write(`${JSON.stringify({ runId: null, jobs: 0, malformed })}\n`);
          else process.stdout.write('no failed jobs to retry\n');
          if (malformed.length) process.exitCode = 1;
          return;
        }
        onStart(runId);
        process.stderr.write(`retrying ${jobs} failed job(s) as run ${runId}\n`);
        if (flags.enqueueOnly) {
          if (flags.json)
            process.stdout.write(`${JSON.stringify({ runId, jobs, enqueued: true, malformed })}\n`);
          return;
        }
        const progress = createProgressReporter();
        try {
          const run = await runActions.waitForRun(engine, runId, { onProgress: (r) => progress.update(r) });
          progress.stop();
          printRun(run, { json: flags.json, config, extra: { retried: jobs, malformed } });
        } finally {
          progress.stop();
        }
      });
    });
}
