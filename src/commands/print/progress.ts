import cliProgress from 'cli-progress';
import type { RunRecord } from '../../store/run-record.js';

export interface ProgressReporter {
  update(run: RunRecord): void;
  stop(): void;
}

export interface ProgressOptions {
  /** Progress never goes to stdout: stdout is for the summary (and `--json`). @defaultValue process.stderr */
  stream?: NodeJS.WriteStream;
  /** Seconds between log lines when the stream is not a TTY. @defaultValue 5 */
  logEverySeconds?: number;
}

/** Outcomes so far over users expected (source count x targets); the total is unknown until the scan counted. */
export function progressOf(run: RunRecord): { done: number; total: number } {
  let done = 0;
  for (const c of Object.values(run.targets)) for (const v of Object.values(c.outcomes)) done += v;
  const targets = Object.keys(run.targets).length;
  const records =
    run.scan.status === 'running' || run.scan.status === 'pending'
      ? (run.scan.total ?? run.scan.records)
      : run.scan.records;
  return { done, total: Math.max(done, records * targets) };
}

/**
 * A progress bar on a TTY (cli-progress), periodic log lines otherwise (CI logs, files), both on
 * stderr.
 */
export function createProgressReporter(options: ProgressOptions = {}): ProgressReporter {
  const stream = options.stream ?? process.stderr;
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format: '{bar} {percentage}% | {value}/{total} user-targets | {rate} | ETA {eta_formatted}',
        hideCursor: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(run) {
        const { done, total } = progressOf(run);
        const requests = Object.values(run.targets).reduce((n, c) => n + c.requests, 0);
        if (!started) {
          bar.start(total, done, { rate: `${requests} requests` });
          started = true;
        }
        bar.setTotal(total);
        bar.update(done, { rate: `${requests} requests` });
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  const every = (options.logEverySeconds ?? 5) * 1000;
  let last = 0;
  return {
    update(run) {
      const now = Date.now();
      if (now - last < every && run.status === 'running') return;
      last = now;
      const { done, total } = progressOf(run);
      const per = Object.entries(run.targets)
        .map(
          ([t, c]) =>
            `${t} ${c.outcomes.created}c/${c.outcomes.updated}u/${c.outcomes.unchanged}=/${c.outcomes.failed}f`,
        )
        .join(', ');
      stream.write(
        `progress ${run.id}: ${done}/${total} user-targets (scan ${run.scan.status}, ${run.scan.records} records); ${per}\n`,
      );
    },
    stop() {},
  };
}
