import { describe, expect, it } from 'vitest';
import { loadRedisConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/core/config-error.js';

describe('loadRedisConfig (read-only commands: runs, report, history, links)', () => {
  it('needs nothing but Redis: no SOURCE_URL, defaults as loadConfig', () => {
    expect(loadRedisConfig({})).toEqual({
      redis: { url: 'redis://127.0.0.1:6379', prefix: 'profile-sync', cluster: false },
      logLevel: 'info',
    });
    expect(
      loadRedisConfig({ REDIS_URL: 'rediss://r.example:6380', PROFILE_SYNC_PREFIX: 'p1', LOG_LEVEL: 'warn' }),
    ).toEqual({ redis: { url: 'rediss://r.example:6380', prefix: 'p1', cluster: false }, logLevel: 'warn' });
  });

  it('reads REDIS_CLUSTER and REDIS_CLUSTER_NODES (issue 4: Redis Cluster)', () => {
    expect(
      loadRedisConfig({ REDIS_CLUSTER: 'true', REDIS_CLUSTER_NODES: 'r1:7000, r2:7001' }).redis,
    ).toMatchObject({ cluster: true, clusterNodes: 'r1:7000, r2:7001' });
    expect(() => loadRedisConfig({ REDIS_CLUSTER_NODES: 'r1' })).toThrow(/REDIS_CLUSTER_NODES/);
  });

  it('names the variable of each problem, like loadConfig', () => {
    let err: unknown;
    try {
      loadRedisConfig({ REDIS_URL: 'http://x', PROFILE_SYNC_PREFIX: 'a:b', LOG_LEVEL: 'loud' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as ConfigError).message;
    for (const name of ['REDIS_URL', 'PROFILE_SYNC_PREFIX', 'LOG_LEVEL']) expect(message).toContain(name);
    expect(message).not.toContain('SOURCE_URL');
  });
});
