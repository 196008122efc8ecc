import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { type AlertReceiver, startAlertReceiver } from '../helpers/alert-receiver.js';
import { freePort } from '../helpers/own-redis.js';
import { cleanPrefix, REDIS_URL, redisClient, testPrefix } from '../helpers/redis.js';
import { inspect } from '../integration/engine/harness.js';
import { assertBuilt, spawnCli, waitFor } from '../reliability/processes.js';

const API_TOKEN = 'daemon-api-token-4e8b1c9d2a7f6e35';

/** Issue 12.2 and 12.3 in the real daemon process: the webhook route enqueues, the daemon alerts. */
describe('profile-sync daemon: POST /users/{id}/sync and alerts (built CLI)', () => {
  let sandbox: Sandbox;
  let rx: AlertReceiver;
  const prefix = testPrefix('daemon-opsapi');
  const redis = redisClient();

  beforeAll(async () => {
    assertBuilt();
    sandbox = await startSandbox({ port: 0, users: 20, rateLimit: null });
    rx = await startAlertReceiver();
  });
  afterAll(async () => {
    await sandbox.close();
    await rx.close();
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  it('a change webhook syncs one user through the daemon; a target refusing our token is alerted once; no secret in the output', async () => {
    const port = await freePort();
    const wrong = 'wrong-sunshine-token-0a1b2c3d';
    const p = spawnCli(['daemon', '--no-schedule'], {
      ...sandbox.env,
      REDIS_URL,
      PROFILE_SYNC_PREFIX: prefix,
      LOG_LEVEL: 'info',
      OPS_PORT: String(port),
      OPS_API_TOKEN: API_TOKEN,
      OPS_PUBLIC_URL: 'https://ops.example.test',
      ALERT_WEBHOOK_URL: rx.url,
      SUNSHINE_API_TOKEN: wrong,
    });
    try {
      await p.waitForLine(/"msg":"daemon started"/);
      const base = `http://127.0.0.1:${port}`;
      const res = await fetch(`${base}/users/user-000005/sync`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_TOKEN}` },
      });
      expect(res.status).toBe(202);
      const { runId } = (await res.json()) as { runId: string };
      const run = await waitFor('the run over', async () => {
        const r = await fetch(`${base}/api/runs/${runId}`);
        const body = (await r.json()) as { status: string; kind: string };
        return body.status !== 'running' ? body : false;
      });
      expect(run.kind).toBe('single-user');
      const zephr = await inspect<{ sub: string }[]>(sandbox.urls.zephr, 'profiles');
      expect(zephr.map((z) => z.sub)).toEqual(['user-000005']);
      const alerts = await waitFor('the auth alert', async () =>
        rx.delivered().length ? rx.delivered() : false,
      );
      expect(alerts).toHaveLength(1);
      expect(alerts[0]).toMatchObject({
        event: 'auth_failed',
        target: 'sunshine',
        runId,
        link: `https://ops.example.test/runs/${runId}`,
      });
    } finally {
      p.child.kill('SIGTERM');
      expect((await p.exited).code).toBe(0);
    }
    const all = p.lines.join('\n');
    for (const secret of [API_TOKEN, wrong, new URL(rx.url).pathname, sandbox.env.SUNSHINE_API_TOKEN!])
      expect(all).not.toContain(secret);
    expect(rx.requests.map((r) => r.text).join('\n')).not.toContain(wrong);
  }, 90_000);
});
