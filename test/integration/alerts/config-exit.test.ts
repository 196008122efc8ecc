import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../../src/sandbox/index.js';
import { CLI, runCli } from '../../helpers/cli.js';
import { REDIS_URL, testPrefix } from '../../helpers/redis.js';

/** Issue 12.3: a bad ALERT_WEBHOOK_URL stops `config check` and the daemon at start-up with exit 2. */
describe.skipIf(!existsSync(CLI))('ALERT_WEBHOOK_URL at start-up', () => {
  let sandbox: Sandbox;
  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, users: 5 });
  });
  afterAll(async () => {
    await sandbox?.close();
  });
  const env = () => ({
    ...sandbox.env,
    REDIS_URL,
    PROFILE_SYNC_PREFIX: testPrefix('alert-cfg'),
    LOG_LEVEL: 'error',
  });

  it.each([
    ['http://example.com/hook', /ALERT_WEBHOOK_URL: plain http:\/\/ is allowed only on loopback/],
    ['ftp://example.com/hook', /ALERT_WEBHOOK_URL: must be an http\(s\) URL/],
    ['garbage', /ALERT_WEBHOOK_URL: must be an http\(s\) URL/],
  ])(
    '%s: config check and daemon exit 2 naming the variable',
    async (value, message) => {
      for (const args of [['config', 'check'], ['daemon']]) {
        const r = await runCli(args, { ...env(), ALERT_WEBHOOK_URL: value }, 30_000);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toMatch(message);
      }
    },
    60_000,
  );

  it('a good one is accepted and shown masked by config check', async () => {
    const url = 'https://hooks.example.test/services/T0/B0/supersecretpathtoken';
    const r = await runCli(['config', 'check'], { ...env(), ALERT_WEBHOOK_URL: url }, 30_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain('supersecretpathtoken');
    expect(r.stdout).toContain('webhookUrl');
  }, 60_000);
});
