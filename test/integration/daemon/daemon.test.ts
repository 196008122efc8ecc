import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { Daemon } from '../../../src/daemon/daemon.js';
import { createLogger } from '../../../src/log.js';
import { type Sandbox, startSandbox } from '../../../src/sandbox/index.js';
import { cleanPrefix, REDIS_URL, redisClient, testPrefix } from '../../helpers/redis.js';
import { waitFor } from '../../reliability/processes.js';

describe('Daemon: status lines', () => {
  let sandbox: Sandbox;
  const prefix = testPrefix('daemon-status');
  const redis = redisClient();

  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, users: 30, rateLimit: null });
  });
  afterAll(async () => {
    await sandbox.close();
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  it('logs per-target queue depth and the runs in progress, never a secret', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    const env = { ...sandbox.env, REDIS_URL, PROFILE_SYNC_PREFIX: prefix, OPS_PORT: '0' };
    const config = loadConfig(env);
    // Slow targets keep the run in progress while the status lines are written.
    for (const t of ['sunshine', 'zephr', 'prelude'] as const)
      sandbox.sims[t].setFaults([{ kind: 'latency', rate: 1, latencyMs: 300 }]);
    const daemon = await Daemon.start({
      config,
      logger: createLogger({ level: 'info', destination: sink }),
      schedule: false,
      concurrency: 2,
      statusIntervalMs: 100,
    });
    try {
      const runId = await runActions.startRun(daemon.engine, { kind: 'backfill' });
      const working = await waitFor('a status line naming the run', () =>
        lines
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find(
            (l) =>
              typeof l.msg === 'string' &&
              l.msg.startsWith('working') &&
              JSON.stringify(l.running).includes(runId),
          ),
      );
      expect(Object.keys(working.queues as object).sort()).toEqual(['prelude', 'sunshine', 'zephr']);
      expect((working.queues as Record<string, string>).sunshine).toMatch(
        /^waiting \d+, active \d+, delayed \d+, failed \d+$/,
      );
      await runActions.waitForRun(daemon.engine, runId, { pollMs: 100 });
      await waitFor('an idle status line', () => lines.some((l) => l.includes('"msg":"idle"')));
    } finally {
      expect(await daemon.stop(5_000)).toEqual({ clean: true, handedBack: 0 });
    }
    const all = lines.join('\n');
    for (const k of ['SOURCE_PASSWORD', 'SUNSHINE_API_TOKEN', 'ZEPHR_JWT_SECRET', 'PRELUDE_API_KEY'])
      expect(all).not.toContain(sandbox.env[k]!);
  }, 60_000);
});

import * as runActions from '../../../jobs/run-actions.js';
