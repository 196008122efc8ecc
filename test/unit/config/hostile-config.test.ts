// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${NAME}` is the config file syntax under test
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { isSecretEnv } from '../../../src/config/config-file.js';
import { isLoopbackHost, loadConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/core/config-error.js';
import { packageRoot } from '../../../src/paths.js';

/** Issue 8.10 (and 8.9's SYNC_SCHEDULE): hostile or broken configuration ends in exit 2 with a message. */

const dir = mkdtempSync(join(tmpdir(), 'ps-hostile-config-'));
let n = 0;
function file(content: string, ext = '.yaml'): string {
  const f = join(dir, `config-${++n}${ext}`);
  writeFileSync(f, content);
  return f;
}

const base = { SOURCE_URL: 'http://127.0.0.1:4100', SOURCE_USERNAME: 'u', SOURCE_PASSWORD: 'p' };
const zephrEnv = { ZEPHR_URL: 'http://127.0.0.1:4102', ZEPHR_APP_ID: 'app', ZEPHR_JWT_SECRET: 'jwt-s3cret' };

function problems(env: Record<string, string>): string[] {
  let err: unknown;
  try {
    loadConfig(env);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  return (err as ConfigError).problems;
}

const ALIAS_BOMB = [
  'a: &a ["x","x","x","x","x","x","x","x","x"]',
  'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
  'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
  'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
  'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
  'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
  'g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
  '',
].join('\n');

describe('a hostile PROFILE_SYNC_CONFIG', () => {
  it('a YAML alias bomb is a ConfigError naming the file, not a crash', () => {
    const f = file(ALIAS_BOMB);
    expect(problems({ ...base, PROFILE_SYNC_CONFIG: f })).toEqual([
      expect.stringMatching(new RegExp(`^${f}: too many YAML alias expansions`)),
    ]);
  });

  it('a few aliases are fine', () => {
    const f = file('sync: &s\n  maxDeletes: 7\n');
    expect(loadConfig({ ...base, PROFILE_SYNC_CONFIG: f }).sync.maxDeletes).toBe(7);
  });

  it.each([
    ['top level', '__proto__:\n  polluted: 1\n'],
    ['a section', 'sync:\n  constructor: 1\n'],
    ['a mapping (JSON)', '{"mapping": {"sunshine": {"__proto__": {"from": "email"}}}}'],
    ['a rule', 'mapping:\n  zephr:\n    plan: { const: a, prototype: 1 }\n'],
  ])(
    '__proto__ / constructor / prototype keys are refused (%s) and Object.prototype stays clean',
    (_, text) => {
      const f = file(text, text.startsWith('{') ? '.json' : '.yaml');
      const p = problems({ ...base, PROFILE_SYNC_CONFIG: f });
      expect(p).toEqual([
        expect.stringMatching(/key "(__proto__|constructor|prototype)" at line \d+.*not allowed/),
      ]);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    },
  );

  it('keys named like Object.prototype members are unknown keys, not schema lookups', () => {
    const f = file('toString: 1\nsync:\n  hasOwnProperty: 2\n');
    expect(problems({ ...base, PROFILE_SYNC_CONFIG: f })).toEqual([
      `${f}: toString: unknown key; remove it or fix its spelling (docs/connectors-core.md lists the keys)`,
      `${f}: sync.hasOwnProperty: unknown key; remove it or fix its spelling (docs/connectors-core.md lists the keys)`,
    ]);
  });

  it('duplicate keys are still refused, with the line', () => {
    const f = file('sync:\n  maxDeletes: 1\n  maxDeletes: 2\n');
    expect(problems({ ...base, PROFILE_SYNC_CONFIG: f })).toEqual([
      `${f}: duplicate key at line 3, column 3 (DUPLICATE_KEY); fix the file`,
    ]);
    const j = file('{"sync": {"maxDeletes": 1, "maxDeletes": 2}}', '.json');
    expect(problems({ ...base, PROFILE_SYNC_CONFIG: j })[0]).toMatch(/duplicate key at line 1/);
  });

  it('80,000 mapping keys are read (each checked, the first bad one named)', () => {
    const lines = ['mapping:', '  zephr:'];
    for (let i = 0; i < 80_000; i++) lines.push(`    f${i}: email`);
    lines.push('    f1: { from: id }');
    const f = file(lines.join('\n'));
    // The duplicate at the very end is found: every key was compared, by a Set per map.
    expect(problems({ ...base, PROFILE_SYNC_CONFIG: f })).toEqual([
      `${f}: duplicate key at line 80003, column 5 (DUPLICATE_KEY); fix the file`,
    ]);
  });

  it('${SECRET} in a mapping value is refused naming the path; a non-secret variable is fine', () => {
    const f = file(
      'mapping:\n  zephr:\n    plan: { const: "${ZEPHR_JWT_SECRET}" }\n    tier: { const: "${PLAN_NAME}" }\n',
    );
    const env = { ...base, ...zephrEnv, PROFILE_SYNC_CONFIG: f, PLAN_NAME: 'gold' };
    const p = problems(env);
    expect(p).toEqual([
      expect.stringMatching(
        new RegExp(`^${f}: mapping.zephr.plan.const: \\$\\{ZEPHR_JWT_SECRET\\} is a secret`),
      ),
    ]);
    expect(p.join('\n')).not.toContain('jwt-s3cret');
    const ok = file('mapping:\n  zephr:\n    tier: { const: "${PLAN_NAME}" }\n');
    const c = loadConfig({ ...env, PROFILE_SYNC_CONFIG: ok });
    expect(c.mapping.zephr?.tier).toEqual({ const: 'gold' });
  });

  it('which variables are secret: the schema secrets and any name that says so', () => {
    for (const v of [
      'SOURCE_PASSWORD',
      'SOURCE_TOKEN',
      'SUNSHINE_API_TOKEN',
      'ZEPHR_JWT_SECRET',
      'ZEPHR_JWT_PRIVATE_KEY',
      'PRELUDE_API_KEY',
      'OPS_DASHBOARD_TOKEN',
      'REDIS_URL',
      'AWS_SECRET_ACCESS_KEY',
      'GITHUB_TOKEN',
      'DB_PASSWORD',
    ])
      expect(isSecretEnv(v), v).toBe(true);
    for (const v of ['PLAN_NAME', 'HOSTNAME', 'ZEPHR_APP_ID', 'SOURCE_USERNAME'])
      expect(isSecretEnv(v), v).toBe(false);
  });

  it('a secret may still reach a secret setting through the file', () => {
    const f = file('source:\n  password: "${MY_IDP_PASSWORD}"\n');
    const { SOURCE_PASSWORD: _, ...env } = base;
    expect(loadConfig({ ...env, PROFILE_SYNC_CONFIG: f, MY_IDP_PASSWORD: 'pw' }).source.password).toBe('pw');
  });
});

describe('the plain-http loopback rule', () => {
  it('only literal loopback addresses and localhost itself', () => {
    for (const h of ['localhost', 'LOCALHOST', '127.0.0.1', '127.1.2.3', '[::1]'])
      expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['evil.localhost', 'localhost.evil.com', '10.0.0.1', '128.0.0.1', '[::2]', 'example.com'])
      expect(isLoopbackHost(h), h).toBe(false);
  });

  it('http://evil.localhost is refused, naming the variable', () => {
    expect(problems({ ...base, SOURCE_URL: 'http://evil.localhost:4100' })).toEqual([
      expect.stringMatching(/^SOURCE_URL: plain http:\/\/ is allowed only on loopback/),
    ]);
    expect(() => loadConfig({ ...base, SOURCE_URL: 'http://localhost:4100' })).not.toThrow();
  });
});

describe('SYNC_SCHEDULE is checked when the config is loaded', () => {
  it('an invalid cron expression is a ConfigError naming SYNC_SCHEDULE', () => {
    expect(problems({ ...base, SYNC_SCHEDULE: 'every tuesday' })).toEqual([
      expect.stringMatching(/^SYNC_SCHEDULE: 'every tuesday' is not a valid cron expression/),
    ]);
    expect(loadConfig({ ...base, SYNC_SCHEDULE: '0 3 * * *' }).sync.schedule).toBe('0 3 * * *');
  });
});

const cli = join(packageRoot(), 'dist', 'cli.js');
const run = promisify(execFile);

describe.skipIf(!existsSync(cli))('config check exits 2 with a message, never a stack trace', () => {
  const check = async (env: Record<string, string>) =>
    (await run(process.execPath, [cli, 'config', 'check'], {
      env: { PATH: process.env.PATH ?? '', ...env },
    }).then(
      (r) => ({ code: 0, ...r }),
      (e) => e,
    )) as { code: number; stderr: string };

  it.each([
    ['an alias bomb', () => ({ ...base, PROFILE_SYNC_CONFIG: file(ALIAS_BOMB) }), /too many YAML alias/],
    ['__proto__', () => ({ ...base, PROFILE_SYNC_CONFIG: file('__proto__:\n  x: 1\n') }), /"__proto__"/],
    ['an invalid SYNC_SCHEDULE', () => ({ ...base, SYNC_SCHEDULE: '99 * * * *' }), /SYNC_SCHEDULE/],
  ])('%s', async (_, env, message) => {
    const r = await check(env());
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
