import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportLine, sandboxOptions } from '../../../src/commands/sandbox.js';
import { ConfigError } from '../../../src/core/config-error.js';

const base = { port: '4100', users: '1000', seed: '1', host: '127.0.0.1' };

describe('profile-sync sandbox options', () => {
  it('keeps the default rate limit unless told otherwise', () => {
    expect(sandboxOptions(base)).toEqual({
      host: '127.0.0.1',
      port: 4100,
      users: 1000,
      seed: 1,
      readOnly: false,
    });
  });

  it('turns --rate-limit and --burst into a token bucket; 0 means none', () => {
    expect(sandboxOptions({ ...base, rateLimit: '120' }).rateLimit).toEqual({ perMinute: 120, burst: 2 });
    expect(sandboxOptions({ ...base, rateLimit: '30' }).rateLimit).toEqual({ perMinute: 30, burst: 1 });
    expect(sandboxOptions({ ...base, rateLimit: '600', burst: '50' }).rateLimit).toEqual({
      perMinute: 600,
      burst: 50,
    });
    expect(sandboxOptions({ ...base, burst: '7' }).rateLimit).toEqual({ perMinute: 6000, burst: 7 });
    expect(sandboxOptions({ ...base, rateLimit: '0', burst: '7' }).rateLimit).toBeNull();
  });

  it('reads the Zephr JWKS file and the Prelude unknown share', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sandbox-opts-')), 'jwks.json');
    const jwks = { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid: 'k' }] };
    writeFileSync(file, JSON.stringify(jwks));
    const o = sandboxOptions({ ...base, zephrJwks: file, preludeUnknownShare: '0.25', readOnly: true });
    expect(o).toMatchObject({ zephrJwks: jwks, preludeUnknownShare: 0.25, readOnly: true });
  });

  it('names the flag of a bad value', () => {
    for (const [flags, flag] of [
      [{ port: '-1' }, '--port'],
      [{ users: 'many' }, '--users'],
      [{ seed: '' }, '--seed'],
      [{ host: ' ' }, '--host'],
      [{ rateLimit: '1.5' }, '--rate-limit'],
      [{ burst: '0' }, '--burst'],
      [{ preludeUnknownShare: '-0.1' }, '--prelude-unknown-share'],
      [{ zephrJwks: '/nonexistent/jwks.json' }, '--zephr-jwks'],
    ] as const) {
      expect(() => sandboxOptions({ ...base, ...flags })).toThrow(ConfigError);
      expect(() => sandboxOptions({ ...base, ...flags })).toThrow(flag);
    }
  });
});

describe('exportLine', () => {
  it('leaves plain values bare and single-quotes the rest', () => {
    expect(exportLine('SOURCE_URL', 'http://127.0.0.1:4100')).toBe('export SOURCE_URL=http://127.0.0.1:4100');
    expect(exportLine('SUNSHINE_EMAIL', 'sync@sandbox.test')).toBe('export SUNSHINE_EMAIL=sync@sandbox.test');
    expect(exportLine('X', "it's $HOME")).toBe("export X='it'\\''s $HOME'");
  });
});
