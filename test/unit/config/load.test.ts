import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { enabledTargets, targetRateLimit } from '../../../src/config/schema.js';
import { ConfigError } from '../../../src/core/config-error.js';

const base = { SOURCE_URL: 'http://127.0.0.1:4100', SOURCE_USERNAME: 'u', SOURCE_PASSWORD: 'p' };

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig(base);
    expect(c.redis).toEqual({ url: 'redis://127.0.0.1:6379', prefix: 'profile-sync', cluster: false });
    expect(c.source.pageSize).toBe(500);
    expect(c.source.readAhead).toBe(4);
    expect(enabledTargets(c)).toEqual([]);
  });

  it('SOURCE_READ_AHEAD: 0 to 16 pages; anything else is named', () => {
    expect(loadConfig({ ...base, SOURCE_READ_AHEAD: '0' }).source.readAhead).toBe(0);
    expect(loadConfig({ ...base, SOURCE_READ_AHEAD: '16' }).source.readAhead).toBe(16);
    for (const bad of ['17', '-1', '1.5', 'many'])
      expect(problems({ ...base, SOURCE_READ_AHEAD: bad }).join('\n')).toMatch(/SOURCE_READ_AHEAD/);
  });

  it('write modes (issue 11.1): Zephr owned and Sunshine merge by default; a bad value is named', () => {
    const env = {
      ...base,
      SUNSHINE_URL: 'http://127.0.0.1:4101',
      SUNSHINE_EMAIL: 'a@b.c',
      SUNSHINE_API_TOKEN: 't',
      ZEPHR_URL: 'http://127.0.0.1:4102',
      ZEPHR_APP_ID: 'app',
      ZEPHR_JWT_SECRET: 's',
    };
    const c = loadConfig(env);
    expect(c.targets.zephr?.writeMode).toBe('owned');
    expect(c.targets.sunshine?.writeMode).toBe('merge');
    const both = loadConfig({ ...env, ZEPHR_WRITE_MODE: 'merge', SUNSHINE_WRITE_MODE: 'owned' });
    expect([both.targets.zephr?.writeMode, both.targets.sunshine?.writeMode]).toEqual(['merge', 'owned']);
    expect(problems({ ...env, ZEPHR_WRITE_MODE: 'shared' })).toEqual([
      expect.stringMatching(/^ZEPHR_WRITE_MODE: /),
    ]);
    expect(problems({ ...env, SUNSHINE_WRITE_MODE: 'OWNED' })).toEqual([
      expect.stringMatching(/^SUNSHINE_WRITE_MODE: /),
    ]);
  });

  it('enables a target exactly when its URL is set', () => {
    const c = loadConfig({
      ...base,
      SUNSHINE_URL: 'http://127.0.0.1:4101',
      SUNSHINE_EMAIL: 'a@b.c',
      SUNSHINE_API_TOKEN: 't',
    });
    expect(enabledTargets(c)).toEqual(['sunshine']);
    expect(c.targets.sunshine).toMatchObject({
      profileSource: 'identity',
      profileType: 'user',
      plan: 'team',
    });
    expect(targetRateLimit(c, 'sunshine')).toBe(250);
  });

  it('picks the Sunshine limit from SUNSHINE_PLAN and lets SUNSHINE_RATE_LIMIT override it', () => {
    const s = {
      ...base,
      SUNSHINE_URL: 'https://x.zendesk.com',
      SUNSHINE_EMAIL: 'a@b.c',
      SUNSHINE_API_TOKEN: 't',
    };
    expect(targetRateLimit(loadConfig({ ...s, SUNSHINE_PLAN: 'enterprise-plus' }), 'sunshine')).toBe(1000);
    expect(targetRateLimit(loadConfig({ ...s, SUNSHINE_PLAN: 'professional' }), 'sunshine')).toBe(500);
    expect(targetRateLimit(loadConfig({ ...s, SUNSHINE_RATE_LIMIT: '42' }), 'sunshine')).toBe(42);
  });

  it('names the missing variable and says to set it', () => {
    expect(problems({})).toEqual(['SOURCE_URL: required']);
    expect(problems({ ...base, SUNSHINE_URL: 'http://127.0.0.1:1' })).toEqual([
      'SUNSHINE_EMAIL: required when SUNSHINE_URL is set',
      'SUNSHINE_API_TOKEN: required when SUNSHINE_URL is set',
    ]);
    expect(problems({ ...base, SUNSHINE_URL: 'http://127.0.0.1:1' })).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^SUNSHINE_EMAIL: /),
        expect.stringMatching(/^SUNSHINE_API_TOKEN: /),
      ]),
    );
  });

  it("refuses the reserved Sunshine source 'zendesk' and a '_restricted' Zephr app id", () => {
    const p = problems({
      ...base,
      SUNSHINE_URL: 'http://127.0.0.1:1',
      SUNSHINE_EMAIL: 'a',
      SUNSHINE_API_TOKEN: 't',
      SUNSHINE_PROFILE_SOURCE: 'Zendesk',
      ZEPHR_URL: 'http://127.0.0.1:2',
      ZEPHR_APP_ID: '_restricted-x',
      ZEPHR_JWT_SECRET: 's',
    });
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^SUNSHINE_PROFILE_SOURCE: .*reserved/),
        expect.stringMatching(/^ZEPHR_APP_ID: .*_restricted/),
      ]),
    );
  });

  it('refuses plain http to a non-loopback host', () => {
    expect(problems({ ...base, SOURCE_URL: 'http://idp.example.com' })).toEqual([
      expect.stringMatching(/^SOURCE_URL: plain http:\/\/ .*TLS/),
    ]);
    expect(() => loadConfig({ ...base, SOURCE_URL: 'http://[::1]:4100' })).not.toThrow();
    expect(() => loadConfig({ ...base, SOURCE_URL: 'https://idp.example.com' })).not.toThrow();
  });

  it('requires exactly one Zephr signing key', () => {
    const z = { ...base, ZEPHR_URL: 'http://127.0.0.1:2', ZEPHR_APP_ID: 'app' };
    expect(problems(z)).toEqual([expect.stringMatching(/exactly one/)]);
    expect(problems({ ...z, ZEPHR_JWT_SECRET: 's', ZEPHR_JWT_PRIVATE_KEY: 'k' })).toEqual([
      expect.stringMatching(/exactly one/),
    ]);
    expect(loadConfig({ ...z, ZEPHR_JWT_SECRET: 's' }).targets.zephr?.jwt.header).toBe('authorization');
  });

  it('never puts a secret value in an error message', () => {
    const p = problems({
      ...base,
      SOURCE_TOKEN: 'super-secret-token',
      PRELUDE_URL: 'http://10.0.0.1',
      PRELUDE_API_KEY: 'k-secret',
    });
    expect(p.join('\n')).not.toMatch(/super-secret-token|k-secret/);
  });
});
