import type { Command } from 'commander';
import { registerBackfill } from './backfill.js';
import { registerConfig } from './config.js';
import { registerDaemon } from './daemon.js';
import { registerDemo } from './demo.js';
import { registerForget } from './forget.js';
import { registerHistory } from './history.js';
import { registerLinks } from './links.js';
import { registerReport } from './report.js';
import { registerRetryFailed } from './retry-failed.js';
import { registerRuns } from './runs.js';
import { registerSandbox } from './sandbox.js';
import { registerSyncUser } from './sync-user.js';
import { registerZephr } from './zephr.js';

/** Every subcommand, one file each. Add a command by adding its register function here. */
export const commands: ((program: Command) => void)[] = [
  registerSandbox,
  registerConfig,
  registerLinks,
  registerDaemon,
  registerDemo,
  registerBackfill,
  registerRuns,
  registerReport,
  registerSyncUser,
  registerHistory,
  registerRetryFailed,
  registerForget,
  registerZephr,
];
