import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/paths.js';

/** The built CLI (`npm run build`; `npm test` builds first): tests drive it as an operator would. */
export const CLI = join(packageRoot(), 'dist', 'cli.js');

export function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} missing: run npm run build first (npm test does)`);
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node dist/cli.js ...args` to completion with exactly this environment (plus PATH; variables
 * given as undefined are left out), and resolves with its exit code and output.
 */
export function runCli(
  args: string[],
  env: Record<string, string | undefined>,
  timeoutMs = 90_000,
): Promise<CliResult> {
  const childEnv = Object.fromEntries(
    Object.entries({ PATH: process.env.PATH ?? '', ...env }).filter(([, v]) => v !== undefined),
  ) as Record<string, string>;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: childEnv, timeout: timeoutMs },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      },
    );
  });
}
