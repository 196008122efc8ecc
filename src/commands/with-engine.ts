import { JOBS } from '../../jobs/index.js';
import * as runActions from '../../jobs/run-actions.js';
import type { Config } from '../config/schema.js';
import type { TargetId } from '../core/targets.js';
import { Engine } from '../queue/engine.js';

/**
 * How a command runs against the engine: created with the job list (jobs/index.ts), the run aborted
 * through jobs/run-actions.ts on a signal, the engine always closed.
 */

/**
 * Runs `fn` with an engine, aborting the run cleanly on the first SIGINT/SIGTERM (remaining jobs are
 * dropped, the summary still printed); a second signal exits at once.
 */
export async function withEngine<T>(
  config: Config,
  only: TargetId[] | undefined,
  fn: (engine: Engine, onStart: (runId: string) => void) => Promise<T>,
): Promise<T> {
  const engine = await Engine.create({ jobs: JOBS, config, ...(only ? { only } : {}) });
  let runId: string | undefined;
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1 || !runId) process.exit(130);
    process.stderr.write(
      `\n${sig}: aborting run ${runId} (remaining jobs are dropped); press again to exit now\n`,
    );
    void runActions.abortRun(engine, runId, `interrupted by ${sig}`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await fn(engine, (id) => {
      runId = id;
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await engine.close();
  }
}
