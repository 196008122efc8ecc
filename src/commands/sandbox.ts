import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { JSONWebKeySet } from 'jose';
import { ConfigError } from '../core/config-error.js';
import {
  DEFAULT_SANDBOX_RATE_LIMIT,
  SANDBOX_ORDER,
  SANDBOX_SOURCE_TOKEN,
  type SandboxOptions,
  startSandbox,
} from '../sandbox/index.js';

interface SandboxFlags {
  port: string;
  users: string;
  seed: string;
  host: string;
  readOnly?: boolean;
  rateLimit?: string;
  burst?: string;
  zephrJwks?: string;
  preludeUnknownShare?: string;
  preludeIds?: string;
}

function integer(flag: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`sandbox: ${flag} must be an integer from ${min} to ${max} (got '${raw}')`);
  }
  return n;
}

function readJwks(file: string): JSONWebKeySet {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(
      `sandbox: --zephr-jwks ${file}: ${err instanceof SyntaxError ? 'not valid JSON' : (err as Error).message}`,
    );
  }
  const keys = (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new ConfigError(
      `sandbox: --zephr-jwks ${file}: expected a JWKS, {"keys": [...]} with at least one key`,
    );
  }
  return parsed as JSONWebKeySet;
}

/** Turns the flags into startSandbox options; every bad value is a ConfigError naming its flag (exit 2). */
export function sandboxOptions(flags: SandboxFlags): SandboxOptions {
  const options: SandboxOptions = {
    host: flags.host,
    port: integer('--port', flags.port, 0, 65_532),
    users: integer('--users', flags.users, 0, 10_000_000),
    seed: integer('--seed', flags.seed, 0, 2 ** 32 - 1),
    readOnly: flags.readOnly === true,
  };
  if (flags.host.trim() === '') throw new ConfigError('sandbox: --host must not be empty');
  const perMinute =
    flags.rateLimit === undefined ? undefined : integer('--rate-limit', flags.rateLimit, 0, 100_000_000);
  const burst = flags.burst === undefined ? undefined : integer('--burst', flags.burst, 1, 100_000_000);
  if (perMinute === 0) options.rateLimit = null;
  else if (perMinute !== undefined) {
    // Without --burst, one second's worth: a client gets the rate, not a minute's quota at once.
    options.rateLimit = { perMinute, burst: burst ?? Math.max(1, Math.ceil(perMinute / 60)) };
  } else if (burst !== undefined) {
    options.rateLimit = { perMinute: DEFAULT_SANDBOX_RATE_LIMIT.perMinute, burst };
  }
  if (flags.zephrJwks !== undefined) options.zephrJwks = readJwks(flags.zephrJwks);
  if (flags.preludeUnknownShare !== undefined) {
    const share = Number(flags.preludeUnknownShare);
    if (flags.preludeUnknownShare.trim() === '' || !(share >= 0 && share <= 1)) {
      throw new ConfigError(
        `sandbox: --prelude-unknown-share must be a number from 0 to 1 (got '${flags.preludeUnknownShare}')`,
      );
    }
    options.preludeUnknownShare = share;
  }
  if (flags.preludeIds !== undefined) {
    if (flags.preludeIds !== 'usr' && flags.preludeIds !== 'source') {
      throw new ConfigError(`sandbox: --prelude-ids must be usr or source (got '${flags.preludeIds}')`);
    }
    options.preludeIds = flags.preludeIds;
  }
  return options;
}

/** `NAME=value`, single-quoted when the value holds anything a shell would interpret. */
export function exportLine(name: string, value: string): string {
  return /^[\w./:@%+=,-]*$/.test(value)
    ? `export ${name}=${value}`
    : `export ${name}='${value.replaceAll("'", "'\\''")}'`;
}

export function registerSandbox(program: Command): void {
  program
    .command('sandbox')
    .description(
      'Serve simulators of the four services (loopback by default, --host for containers; source P, Sunshine P+1, Zephr P+2, Prelude P+3)',
    )
    .option('--port <port>', 'first port; 0 = four ephemeral ports', '4100')
    .option('--users <n>', 'synthetic users in the source', '1000')
    .option('--seed <n>', 'seed for the synthetic users, unknown Prelude users and faults', '1')
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--read-only', 'the source answers writes with 403 (read-only identity service)')
    .option(
      '--rate-limit <perMinute>',
      'requests per minute per credential on each simulator; 0 = none',
      undefined,
    )
    .option('--burst <n>', 'token bucket size per credential (default: one second of --rate-limit)')
    .option('--zephr-jwks <file>', 'JWKS file whose keys Zephr accepts for RS256/ES256 JWTs')
    .option('--prelude-unknown-share <share>', "share of source users Prelude doesn't know (0..1)", '0.1')
    .option(
      '--prelude-ids <usr|source>',
      "ids Prelude's profile PATCH accepts: usr (Prelude's own, as the real service; default) or source (legacy)",
    )
    .action(async (flags: SandboxFlags) => {
      const options = sandboxOptions(flags);
      // Listen before anything is printed: a test (or an operator) may send Ctrl-C as soon as the
      // export lines appear, and a signal with no listener would kill the process (exit null, not 0).
      const stopped = new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      const sandbox = await startSandbox(options);
      const limit = options.rateLimit === undefined ? DEFAULT_SANDBOX_RATE_LIMIT : options.rateLimit;
      const out: string[] = [
        `profile-sync sandbox: ${options.users} users, seed ${options.seed}${options.readOnly ? ', read-only source' : ''}, ` +
          `Prelude ids ${options.preludeIds ?? 'usr'}, ` +
          (limit
            ? `rate limit ${limit.perMinute}/min (burst ${limit.burst}) per credential`
            : 'no rate limit'),
        '',
        ...SANDBOX_ORDER.map((name) => `${name.padEnd(9)}${sandbox.urls[name]}`),
        '',
        ...Object.entries(sandbox.env).map(([k, v]) => exportLine(k, v)),
        `# or, instead of SOURCE_USERNAME/SOURCE_PASSWORD: ${exportLine('SOURCE_TOKEN', SANDBOX_SOURCE_TOKEN)}`,
        '',
        'Inspection API on every simulator under /__sandbox/ (see docs/sandbox.md). Ctrl-C stops.',
        '',
      ];
      process.stdout.write(out.join('\n'));
      const signal = await stopped;
      await sandbox.close();
      process.stderr.write(`profile-sync sandbox: ${signal}, closed\n`);
      process.exitCode = 0;
    });
}
