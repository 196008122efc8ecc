import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/paths.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';

/**
 * `profile-sync config check` as an operator runs it: the built CLI (`npm run build` first; `npm test`
 * does it in pretest) with exactly the environment the sandbox prints.
 */

const CLI = join(packageRoot(), 'dist', 'cli.js');
let sandbox: Sandbox;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  sandbox = await startSandbox({ port: 0, users: 30, seed: 3 });
});
afterAll(async () => {
  await sandbox?.close();
});

function run(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      // Only what an operator would export: no inherited SOURCE_* or *_URL from the test runner.
      env: { PATH: process.env.PATH ?? '', ...env },
      cwd: packageRoot(),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const SECRET_VARS = ['SOURCE_PASSWORD', 'SUNSHINE_API_TOKEN', 'ZEPHR_JWT_SECRET', 'PRELUDE_API_KEY'];

function expectNoSecret(text: string) {
  for (const name of SECRET_VARS) expect(text).not.toContain(sandbox.env[name]!);
}

interface Report {
  config: { targets: Record<string, Record<string, unknown>>; source: Record<string, unknown> };
  user: { source: string; masked: boolean; value: { id: string } };
  targets: {
    target: string;
    enabled: boolean;
    rateLimitPerMinute?: number;
    fields?: Record<string, unknown>;
    plan?: { method: string; path: string; body?: unknown }[];
    writeMode?: { mode: string; variable?: string; create: number; update: number };
    connection?: string;
  }[];
}

describe('profile-sync config check on the sandbox environment', () => {
  it('prints the masked configuration, the targets with their limits, and FieldMaps and plans for the sample', async () => {
    const { code, stdout, stderr } = await run(['config', 'check'], sandbox.env);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expectNoSecret(stdout);
    expect(stdout).toContain('"apiToken": "****en"');
    expect(stdout).toMatch(/sunshine\s+enabled\s+250 requests\/min/);
    expect(stdout).toMatch(/zephr\s+enabled\s+120 requests\/min/);
    expect(stdout).toMatch(/prelude\s+enabled\s+120 requests\/min/);
    expect(stdout).toContain(
      'GET /api/v2/user_profiles?identifier=identity%3Auser%3Aexternal_id%3Asample%3A1042%2Fzo%C3%AB',
    );
    expect(stdout).toContain('PUT /blaize/profile/');
    expect(stdout).toContain('PATCH /v2/session/apps/');
    expect(stdout).toContain('identifiers.email = "zoe.obrien@example.com"');
    // Issue 11.1: the write mode and what a write costs, from each connector's plan().
    expect(stdout).toContain(
      'write mode: merge (SUNSHINE_WRITE_MODE): a create 2 requests, an update of every field 2 requests',
    );
    expect(stdout).toContain(
      'write mode: owned (ZEPHR_WRITE_MODE): a create 1 request, an update of every field 1 request',
    );
    expect(stdout).toContain('write mode: patch: a create 1 request, an update of every field 1 request');
  });

  it('the write modes follow ZEPHR_WRITE_MODE and SUNSHINE_WRITE_MODE; a bad value exits 2 naming it', async () => {
    const env = { ...sandbox.env, ZEPHR_WRITE_MODE: 'merge', SUNSHINE_WRITE_MODE: 'owned' };
    const { code, stdout } = await run(['config', 'check', '--json'], env);
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as Report;
    const modes = Object.fromEntries(report.targets.map((t) => [t.target, t.writeMode]));
    expect(modes).toEqual({
      sunshine: { mode: 'owned', variable: 'SUNSHINE_WRITE_MODE', create: 1, update: 1 },
      zephr: { mode: 'merge', variable: 'ZEPHR_WRITE_MODE', create: 2, update: 2 },
      prelude: { mode: 'patch', create: 1, update: 1 },
    });
    const bad = await run(['config', 'check'], { ...sandbox.env, ZEPHR_WRITE_MODE: 'mine' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('ZEPHR_WRITE_MODE');
  });

  it('--json: every target enabled, a FieldMap and the create plan each; secrets masked', async () => {
    const { code, stdout } = await run(['config', 'check', '--json'], sandbox.env);
    expect(code).toBe(0);
    expectNoSecret(stdout);
    const report = JSON.parse(stdout) as Report;
    expect(report.targets.map((t) => [t.target, t.enabled])).toEqual([
      ['sunshine', true],
      ['zephr', true],
      ['prelude', true],
    ]);
    expect(report.config.targets.zephr!.jwt).toMatchObject({ secret: '****et' });
    expect(report.config.source.password).toBe('****et');
    const plans = Object.fromEntries(report.targets.map((t) => [t.target, t.plan!.map((p) => p.method)]));
    // Prelude (the sandbox's usr ids): the sample user has no link, so its lookup, then the PATCH.
    expect(plans).toEqual({ sunshine: ['GET', 'PUT'], zephr: ['PUT'], prelude: ['POST', 'PATCH'] });
    expect(report.targets[2]!.plan![1]!.body).toEqual({ profile: report.targets[2]!.fields });
  });

  it('--user ID fetches a real user from the source (PII masked) and --connect checks every target', async () => {
    const { code, stdout, stderr } = await run(
      ['config', 'check', '--json', '--connect', '--user', await firstSourceId()],
      sandbox.env,
    );
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as Report;
    expect(report.user.source).toBe('source');
    expect(report.user.masked).toBe(true);
    expect(report.targets.map((t) => t.connection)).toEqual(['ok', 'ok', 'ok']);
  });

  it('an unknown --user exits 1 and says so', async () => {
    const { code, stderr } = await run(['config', 'check', '--user', 'nobody-here'], sandbox.env);
    expect(code).toBe(1);
    expect(stderr).toContain('not found in the source');
  });

  it('a bad configuration exits 2 with the ConfigError message, naming the variable', async () => {
    const { code, stdout, stderr } = await run(['config', 'check'], {
      ...sandbox.env,
      ZEPHR_APP_ID: '_restricted_app',
    });
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain('ZEPHR_APP_ID');
    expect(stderr).toContain('_restricted');
    expectNoSecret(stderr);
  });

  it('only targets with a URL are enabled', async () => {
    const env = { ...sandbox.env };
    delete env.ZEPHR_URL;
    const { code, stdout } = await run(['config', 'check'], env);
    expect(code).toBe(0);
    expect(stdout).toMatch(/zephr\s+disabled/);
  });
});

async function firstSourceId(): Promise<string> {
  const auth = Buffer.from(`${sandbox.env.SOURCE_USERNAME}:${sandbox.env.SOURCE_PASSWORD}`).toString(
    'base64',
  );
  const res = await fetch(
    `${sandbox.urls.source}/user?firstResult=0&maxResults=1&sortBy=userId&sortOrder=asc`,
    {
      headers: { authorization: `Basic ${auth}` },
    },
  );
  const users = (await res.json()) as { id: string }[];
  return users[0]!.id;
}
