import type { Config } from '../../config/schema.js';
import type { RunRecord } from '../../store/run-record.js';
import { limitsOf, writeModesOf } from '../options.js';
import {
  exitCodeFor,
  planTable,
  preludePlanNote,
  runHeadline,
  runSummaryJson,
  runWarnings,
  summaryTable,
} from './run-report.js';

/**
 * `printRun`: what a command prints when its run is over (the run table or JSON, warnings), and the
 * exit code it sets.
 */

/** Prints a finished run: the table (or JSON on stdout) and warnings; sets the exit code. */
export function printRun(
  run: RunRecord,
  opts: { json?: boolean; extra?: Record<string, unknown>; config: Config; removals?: string[] },
): void {
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(runSummaryJson(run, opts.extra ?? {}), null, 2)}\n`);
  } else {
    const out = [runHeadline(run), '', summaryTable(run)];
    if (run.options.dryRun)
      out.push(
        '',
        'dry run: nothing was written. A real run would send:',
        planTable(
          run,
          limitsOf(opts.config, run.options.targets),
          writeModesOf(opts.config, run.options.targets),
        ),
        ...preludePlanNote(run),
      );
    if (opts.removals?.length) out.push('', ...opts.removals);
    out.push('', `details: profile-sync report ${run.id}`);
    process.stdout.write(`${out.join('\n')}\n`);
  }
  for (const w of runWarnings(run)) process.stderr.write(`${w}\n`);
  process.exitCode = exitCodeFor(run);
}
