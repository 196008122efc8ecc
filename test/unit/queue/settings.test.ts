import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/core/config-error.js';

const BASE = { SOURCE_URL: 'http://127.0.0.1:1' };

describe('engine settings in the config', () => {
  it('has documented defaults', () => {
    expect(loadConfig(BASE).sync).toMatchObject({
      concurrency: 4,
      attempts: 8,
      attemptsUnknown: 3,
      backoffBaseMs: 2000,
      backoffMaxMs: 300_000,
      unlinkedRecheckMs: 24 * 3600_000,
      recordPii: false,
      runsKeep: 200,
      runsMaxAgeMs: 30 * 24 * 3600_000,
      rateLimitMarginMs: 1000,
    });
  });

  it('parses durations and booleans from the environment', () => {
    const s = loadConfig({
      ...BASE,
      UNLINKED_RECHECK: '90m',
      RUNS_MAX_AGE: '7d',
      RECORD_PII: 'true',
      SYNC_ATTEMPTS: '3',
    }).sync;
    expect(s.unlinkedRecheckMs).toBe(90 * 60_000);
    expect(s.runsMaxAgeMs).toBe(7 * 86_400_000);
    expect(s.recordPii).toBe(true);
    expect(s.attempts).toBe(3);
    expect(loadConfig({ ...BASE, UNLINKED_RECHECK: '3600' }).sync.unlinkedRecheckMs).toBe(3_600_000);
  });

  it('names the variable of a bad value', () => {
    expect(() => loadConfig({ ...BASE, UNLINKED_RECHECK: 'soon' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...BASE, UNLINKED_RECHECK: 'soon' })).toThrow(/UNLINKED_RECHECK/);
    expect(() => loadConfig({ ...BASE, SYNC_CONCURRENCY: '0' })).toThrow(/SYNC_CONCURRENCY/);
  });
});
