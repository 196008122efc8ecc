import type { Command } from 'commander';
import { registerConfig } from './config.js';
import { registerDaemon } from './daemon.js';
import { registerLinks } from './links.js';
import { registerSandbox } from './sandbox.js';

/** Every subcommand, one file each. Add a command by adding its register function here. */
export const commands: ((program: Command) => void)[] = [
  registerSandbox,
  registerConfig,
  registerLinks,
  registerDaemon,
];
