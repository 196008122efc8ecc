import type { Command } from 'commander';

export function registerSandbox(program: Command): void {
  program
    .command('sandbox')
    .description(
      'Serve simulators of the four services on loopback (source P, Sunshine P+1, Zephr P+2, Prelude P+3)',
    )
    .option('--port <port>', 'first port', '4100')
    .option('--users <n>', 'synthetic users in the source', '1000')
    .option('--seed <n>', 'seed for the synthetic users', '1')
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .action(async () => {
      process.stderr.write('sandbox: not implemented yet\n');
      process.exitCode = 1;
    });
}
