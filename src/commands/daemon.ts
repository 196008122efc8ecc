import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { ConfigError } from '../core/config-error.js';
import { Daemon } from '../daemon/daemon.js';

interface DaemonFlags {
  schedule: boolean;
  concurrency?: string;
}

/** `--concurrency N`: an integer from 1 to 256 (the `SYNC_CONCURRENCY` bounds). */
export function parseConcurrency(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < 1 || n > 256)
    throw new ConfigError(`daemon: --concurrency must be an integer from 1 to 256 (got '${raw}')`);
  return n;
}

export function registerDaemon(program: Command): void {
  program
    .command('daemon')
    .description(
      'Run workers for every enabled target and the scan queue, plus the SYNC_SCHEDULE reconcile (shared by all daemons)',
    )
    .option('--no-schedule', 'workers only: take jobs, start no scheduled run')
    .option('--concurrency <n>', 'sync jobs per target in this process (default SYNC_CONCURRENCY)')
    .action(async (flags: DaemonFlags) => {
      const concurrency = parseConcurrency(flags.concurrency);
      const config = loadConfig();
      const daemon = await Daemon.start({
        config,
        schedule: flags.schedule,
        ...(concurrency !== undefined ? { concurrency } : {}),
      });
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      const timeoutMs = config.sync.shutdownTimeoutMs;
      daemon.logger.info({ signal, timeoutMs }, 'shutting down: no new jobs, finishing in-flight ones');
      // A second signal does not wait for the timeout: hand back now.
      const again = () => {
        daemon.logger.warn('second signal: handing in-flight jobs back now');
        void daemon.stop(0);
      };
      process.once('SIGINT', again);
      process.once('SIGTERM', again);
      const result = await daemon.stop(timeoutMs);
      daemon.logger.info(result, result.clean ? 'daemon stopped cleanly' : 'daemon stopped');
      process.exitCode = 0;
      // After a hand-back a job's processor may still hold the event loop; nothing of it is needed now.
      if (!result.clean) process.exit(0);
    });
}
