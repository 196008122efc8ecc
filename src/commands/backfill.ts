import { accessSync, constants, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { ConfirmError } from '../../jobs/reconcile-deletions.js';
import * as runActions from '../../jobs/run-actions.js';
import { loadConfig } from '../config/load.js';
import { ConfigError } from '../core/config-error.js';
import { TARGET_IDS } from '../core/targets.js';
import type { Engine } from '../queue/engine.js';
import type { RunRecord } from '../store/run-record.js';
import { ItemsFile } from './items-file.js';
import { parsePositiveInt, parseRate, parseTargets, parseUsers } from './options.js';
import { printRun } from './print/print-run.js';
import { createProgressReporter } from './print/progress.js';
import { removalList } from './print/run-report.js';
import { withEngine } from './with-engine.js';

interface BackfillFlags {
  targets?: string;
  users?: string;
  limit?: string;
  dryRun?: boolean;
  full?: boolean;
  enqueueOnly?: boolean;
  concurrency?: string;
  json?: boolean;
  plan?: string;
  itemsFile?: string;
  maxFailureRate?: string;
  showPii?: boolean;
  confirmDeletes?: string;
}

export function registerBackfill(program: Command): void {
  program
    .command('backfill')
    .description(
      'One-off sync of every source user into the targets; runs its own workers and waits (exit 0 ok, 1 failures, 2 usage)',
    )
    .option(
      '--targets <list>',
      `comma-separated targets (${TARGET_IDS.join(',')}; default every enabled one)`,
    )
    .option('--users <ids>', 'only these source user ids, comma-separated')
    .option('--limit <n>', 'at most n source users')
    .option('--dry-run', 'compute every diff and plan; send no write (reads only with --full)')
    .option('--full', 'ignore hashes, read each target and repair drift in managed fields')
    .option('--enqueue-only', 'enqueue the run for a running daemon and exit')
    .option('--concurrency <n>', 'sync jobs per target in this process (default SYNC_CONCURRENCY)')
    .option('--json', 'print the run summary as JSON on stdout (progress on stderr)')
    .option('--plan <file>', 'write each planned request (PII masked) as JSON lines (with --dry-run)')
    .option(
      '--items-file <file>',
      'write every item of the run (changes, rejections, failures; PII masked) as JSON lines, beyond RUN_ITEMS_MAX',
    )
    .option(
      '--max-failure-rate <r>',
      'abort cleanly once failed+rejected exceed this share after the first 100 users',
    )
    .option('--show-pii', 'store and show diffs unmasked')
    .option(
      '--confirm-deletes <runId>',
      'remove the users whose removal the safety brake held in that run (re-checked against the source first)',
    )
    .action(async (flags: BackfillFlags) => {
      if (flags.confirmDeletes !== undefined) {
        await confirmDeletes(flags.confirmDeletes, flags);
        return;
      }
      const targets = parseTargets(flags.targets);
      const users = parseUsers(flags.users);
      const limit = parsePositiveInt('--limit', flags.limit);
      const concurrency = parsePositiveInt('--concurrency', flags.concurrency, 256);
      const maxFailureRate = parseRate('--max-failure-rate', flags.maxFailureRate);
      if (flags.plan && !flags.dryRun) throw new ConfigError('--plan FILE needs --dry-run');
      if (flags.plan) checkPlanFile(flags.plan);
      if (flags.itemsFile !== undefined && flags.enqueueOnly)
        throw new ConfigError(
          '--items-file needs this process to run the jobs: not with --enqueue-only (use report --json)',
        );
      if (flags.itemsFile !== undefined) checkOutputFile('--items-file', flags.itemsFile);
      const config = loadConfig();
      await withEngine(config, targets, async (engine, onStart) => {
        if (!flags.enqueueOnly) await engine.startWorkers(concurrency ? { concurrency } : {});
        const itemsFile = flags.itemsFile ? new ItemsFile(flags.itemsFile, engine.runs) : undefined;
        try {
          await runBackfill(engine, onStart, flags, {
            targets,
            users,
            limit,
            maxFailureRate,
            config,
            itemsFile,
          });
        } finally {
          itemsFile?.finish();
        }
      });
    });
}

async function runBackfill(
  engine: Engine,
  onStart: (runId: string) => void,
  flags: BackfillFlags,
  o: {
    targets: ReturnType<typeof parseTargets>;
    users: ReturnType<typeof parseUsers>;
    limit: number | undefined;
    maxFailureRate: number | undefined;
    config: ReturnType<typeof loadConfig>;
    itemsFile: ItemsFile | undefined;
  },
): Promise<void> {
  const { targets, users, limit, maxFailureRate, config, itemsFile } = o;
  const runId = await runActions.startRun(engine, {
    kind: 'backfill',
    ...(targets ? { targets } : {}),
    ...(users ? { users } : {}),
    ...(limit !== undefined ? { limit } : {}),
    dryRun: Boolean(flags.dryRun),
    full: Boolean(flags.full),
    ...(flags.showPii ? { showPii: true } : {}),
    plan: Boolean(flags.plan),
    ...(maxFailureRate !== undefined ? { maxFailureRate } : {}),
  });
  onStart(runId);
  itemsFile?.bind(runId);
  if (flags.enqueueOnly) {
    if (flags.json) process.stdout.write(`${JSON.stringify({ runId, enqueued: true })}\n`);
    else
      process.stdout.write(
        `run ${runId} enqueued; a running daemon picks it up. Follow it with: profile-sync report ${runId}\n`,
      );
    return;
  }
  process.stderr.write(`run ${runId} started\n`);
  const run = await waitWithProgress(engine, runId);
  let planned = 0;
  if (flags.plan) {
    const lines: string[] = [];
    for await (const line of engine.runs.plan(runId)) lines.push(JSON.stringify(line));
    writeFileSync(flags.plan, lines.length ? `${lines.join('\n')}\n` : '');
    planned = lines.length;
    process.stderr.write(`plan: ${planned} requests written to ${flags.plan}\n`);
  }
  if (itemsFile) {
    const missing = itemsFile.finish(run);
    process.stderr.write(`items: ${itemsFile.written} written to ${itemsFile.path}\n`);
    if (missing) process.stderr.write(`${missing}\n`);
  }
  printRun(run, {
    json: flags.json,
    config,
    extra: {
      ...(flags.plan ? { planFile: flags.plan, plannedRequests: planned } : {}),
      ...(itemsFile ? { itemsFile: itemsFile.path, itemsWritten: itemsFile.written } : {}),
    },
    ...(run.options.dryRun ? { removals: await dryRunRemovals(engine, run) } : {}),
  });
}

/**
 * `--plan FILE` is written when the run ends: checked before it starts (issue 8.9), so a dry run of a
 * million users does not end in ENOENT. Its directory must exist and be writable; FILE itself, when
 * it exists, must be a writable file.
 */
export function checkPlanFile(file: string): void {
  checkOutputFile('--plan', file);
}

/** An output file given by `option` (`--plan`, `--items-file`): checked before the run starts. */
export function checkOutputFile(option: string, file: string): void {
  const path = resolve(file);
  const dir = dirname(path);
  const fail = (why: string): never => {
    throw new ConfigError(`${option}: cannot write ${file}: ${why}; choose another path`);
  };
  let dirStat: ReturnType<typeof statSync> | undefined;
  try {
    dirStat = statSync(dir);
  } catch {
    fail(`directory ${dir} does not exist`);
  }
  if (!dirStat?.isDirectory()) fail(`${dir} is not a directory`);
  let fileStat: ReturnType<typeof statSync> | undefined;
  try {
    fileStat = statSync(path);
  } catch {
    // does not exist yet: the directory must be writable
  }
  if (fileStat?.isDirectory()) fail('it is a directory');
  try {
    accessSync(fileStat ? path : dir, constants.W_OK);
  } catch {
    fail(fileStat ? 'the file is not writable' : `directory ${dir} is not writable`);
  }
}

/** The dry run's "would be removed" lines: its removal items are the last ones the scan recorded. */
async function dryRunRemovals(engine: Engine, run: RunRecord): Promise<string[]> {
  const gone = Object.values(run.targets).reduce((n, c) => n + c.outcomes.removed + c.outcomes.orphaned, 0);
  if (gone === 0) return [];
  const total = await engine.runs.itemCount(run.id);
  const from = Math.max(0, total - gone);
  return removalList(run, await engine.runs.items(run.id, from, Math.min(gone, 1000)));
}

/**
 * `backfill --confirm-deletes RUN` (issue 5): re-drives the removals the brake held in that run,
 * waits for them and prints the run. Exit 1 when the run has nothing held (or a removal failed).
 */
async function confirmDeletes(runId: string, flags: BackfillFlags): Promise<void> {
  const concurrency = parsePositiveInt('--concurrency', flags.concurrency, 256);
  const config = loadConfig();
  await withEngine(config, undefined, async (engine, onStart) => {
    await engine.startWorkers(concurrency ? { concurrency } : {});
    let confirmed: Awaited<ReturnType<typeof runActions.confirmDeletes>>;
    try {
      confirmed = await runActions.confirmDeletes(engine, runId);
    } catch (err) {
      if (!(err instanceof ConfirmError)) throw err;
      process.stderr.write(`--confirm-deletes: ${err.message}\n`);
      process.exitCode = 1;
      return;
    }
    onStart(runId);
    process.stderr.write(
      `run ${runId}: ${confirmed.removals} held removals re-driven; ${confirmed.returned} users are back in the source and are kept${confirmed.ignored.length ? `; policy now ignore in ${confirmed.ignored.join(', ')}: nobody removed there` : ''}\n`,
    );
    const run = await waitWithProgress(engine, runId);
    printRun(run, { json: flags.json, config, extra: { confirmed } });
  });
}

/** Waits for the run, with a progress bar on a TTY and log lines otherwise. */
async function waitWithProgress(engine: Engine, runId: string): Promise<RunRecord> {
  const progress = createProgressReporter();
  try {
    return await runActions.waitForRun(engine, runId, { onProgress: (r) => progress.update(r) });
  } finally {
    progress.stop();
  }
}
