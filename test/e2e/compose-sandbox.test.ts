import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SANDBOX_ORDER } from '../../src/sandbox/index.js';
import { runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/own-redis.js';
import { cleanPrefix, REDIS_URL, redisClient, testPrefix } from '../helpers/redis.js';
import { assertBuilt, type CliProcess, spawnCli, waitFor } from '../reliability/processes.js';

// `docker compose --profile sandbox up` without Docker: the built CLI run with the compose file's own
// `sandbox` command (its --host 0.0.0.0; ephemeral ports and 40 users instead of 4100 and 1000) and the
// `sandbox-daemon` command and environment (its URLs moved to those ports, Redis and prefix the test's).
// The daemon gets ready on every target and a backfill through it syncs every user.

const ROOT = join(import.meta.dirname, '..', '..');
const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'));
const sandboxService = compose.services.sandbox;
const daemonService = compose.services['sandbox-daemon'];

function withFlag(argv: string[], name: string, value: string): string[] {
  const i = argv.indexOf(name);
  return i < 0 ? [...argv, name, value] : argv.map((a, j) => (j === i + 1 ? value : a));
}

describe('the compose sandbox profile, run without Docker', () => {
  const prefix = testPrefix('compose');
  const redis = redisClient();
  let sandbox: CliProcess;
  let daemon: CliProcess | undefined;
  let env: Record<string, string>;
  let opsPort: number;

  beforeAll(async () => {
    assertBuilt();
    const argv = withFlag(withFlag(sandboxService.command as string[], '--port', '0'), '--users', '40');
    expect(argv.slice(0, 3)).toEqual(['sandbox', '--host', '0.0.0.0']);
    sandbox = spawnCli(argv, {});
    await sandbox.waitForLine(/^export PRELUDE_API_KEY=/);
    const printed: Record<string, string> = {};
    for (const line of sandbox.lines) {
      const m = /^export (\w+)=(.*)$/.exec(line);
      if (m) printed[m[1]!] = m[2]!;
    }
    // The compose daemon's URLs name ports 4100..4103 in SANDBOX_ORDER: move them to the ones given.
    const composePort = Number(sandboxService.command[sandboxService.command.indexOf('--port') + 1]);
    const moved: Record<string, string> = { ...daemonService.environment };
    for (const [i, sim] of SANDBOX_ORDER.entries()) {
      const name = `${sim.toUpperCase()}_URL`;
      expect(moved[name]).toBe(`http://127.0.0.1:${composePort + i}`);
      moved[name] = printed[name]!;
    }
    opsPort = await freePort();
    env = { ...moved, REDIS_URL, PROFILE_SYNC_PREFIX: prefix, OPS_PORT: String(opsPort), LOG_LEVEL: 'info' };
  });
  afterAll(async () => {
    daemon?.kill();
    sandbox?.kill();
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  it('the daemon is ready on every target and a backfill syncs every user', async () => {
    const d = spawnCli(daemonService.command as string[], env);
    daemon = d;
    const ready = await waitFor('readyz 200', async () => {
      if (d.child.exitCode !== null) throw new Error(`daemon exited:\n${d.lines.join('\n')}`);
      const res = await fetch(`http://127.0.0.1:${opsPort}/readyz`).catch(() => null);
      return res?.status === 200 ? ((await res.json()) as { checks: { workers: object } }) : false;
    });
    expect(Object.keys(ready.checks.workers).sort()).toEqual([
      'scan',
      'sync-prelude',
      'sync-sunshine',
      'sync-zephr',
    ]);

    const run = await runCli(['backfill', '--json'], { ...env, LOG_LEVEL: 'error' });
    expect(run.code, run.stderr).toBe(0);
    const s = JSON.parse(run.stdout) as { targets: Record<string, Record<string, number>> };
    expect(s.targets.sunshine!.created).toBe(40);
    expect(s.targets.zephr!.created).toBe(40);
    expect(s.targets.prelude!.created! + s.targets.prelude!.unlinked!).toBe(40);
    for (const t of ['sunshine', 'zephr', 'prelude']) expect(s.targets[t]!.failed).toBe(0);

    d.child.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });
});
