import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { commands } from './commands/index.js';
import { ConfigError } from './core/config-error.js';
import { packageRoot } from './paths.js';

/** Exit codes scripts can trust. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

const pkg = JSON.parse(readFileSync(`${packageRoot()}/package.json`, 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command('profile-sync')
    .description('Keeps user profiles in Zendesk Sunshine, Zephr and Prelude true to one identity service.')
    .version(pkg.version, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const register of commands) register(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end with exitCode 0; usage errors with 1 in commander, 2 here.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`profile-sync: ${err.message}\n`);
      return EXIT.usage;
    }
    process.stderr.write(
      `profile-sync: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    return EXIT.failed;
  }
}

const code = await main(process.argv);
process.exitCode = code;
