// Starts `profile-sync sandbox` (dist/cli.js) as a child process for a benchmark and waits for its export
// lines; `cpu` pins it with taskset when the machine has it, so the load generator can have the other core.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

let tasksetWorks;
/** Whether `taskset` can pin a process here. */
export function canPin() {
  if (tasksetWorks === undefined) {
    try {
      execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
      tasksetWorks = true;
    } catch {
      tasksetWorks = false;
    }
  }
  return tasksetWorks;
}

/** `[command, args]` running `node ...args`, on CPU `cpu` when given and pinning works. */
export function nodeCommand(args, cpu) {
  return cpu !== undefined && canPin()
    ? ['taskset', ['-c', String(cpu), process.execPath, ...args]]
    : [process.execPath, args];
}

/**
 * @param {string[]} args sandbox flags, e.g. ['--users', '1000', '--rate-limit', '0'] (`--port 0` is added)
 * @param {{cpu?: number, timeoutMs?: number}} [options]
 * @returns {Promise<{child: import('node:child_process').ChildProcess, env: Record<string, string>}>}
 */
export async function startSandboxProcess(args, options = {}) {
  const cli = join(root, 'dist', 'cli.js');
  if (!existsSync(cli))
    throw new Error('dist/cli.js is missing: run `npm run build` first (npm run bench does).');
  const [cmd, cmdArgs] = nodeCommand([cli, 'sandbox', '--port', '0', ...args], options.cpu);
  const child = spawn(cmd, cmdArgs, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  while (!out.includes('PRELUDE_API_KEY=')) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`sandbox did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const env = Object.fromEntries([...out.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
  return { child, env };
}

/**
 * The engine's environment over a sandbox for a benchmark: its own Redis prefix, quiet logs, and the
 * targets' rate limits off (the figure is the engine's, not the vendors' limits). `extra` wins.
 */
export function benchEnv(sandboxEnv, { redisUrl, prefix, logLevel = 'warn' }, extra = {}) {
  return {
    ...sandboxEnv,
    REDIS_URL: redisUrl,
    PROFILE_SYNC_PREFIX: prefix,
    LOG_LEVEL: logLevel,
    SUNSHINE_RATE_LIMIT: '100000000',
    ZEPHR_RATE_LIMIT: '100000000',
    PRELUDE_RATE_LIMIT: '100000000',
    ...extra,
  };
}
