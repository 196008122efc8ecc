import { describe, expect, it } from 'vitest';
import { TokenBuckets } from '../../../../src/sandbox/kit/token-bucket.js';

describe('TokenBuckets', () => {
  it('lets a burst through, then refuses with Retry-After rounded up to whole seconds', () => {
    let now = 1_000_000;
    const b = new TokenBuckets({ perMinute: 60, burst: 3 }, () => now);
    expect(b.take('a')).toEqual({ ok: true, limit: 60, remaining: 2 });
    expect(b.take('a')).toMatchObject({ ok: true, remaining: 1 });
    expect(b.take('a')).toMatchObject({ ok: true, remaining: 0 });
    expect(b.take('a')).toEqual({ ok: false, limit: 60, remaining: 0, retryAfterSeconds: 1 });
    now += 400; // 0.4 tokens: 0.6 s still to wait, which rounds up to 1
    expect(b.take('a')).toMatchObject({ ok: false, retryAfterSeconds: 1 });
  });

  it('refills perMinute/60 tokens a second, never above burst', () => {
    let now = 0;
    const b = new TokenBuckets({ perMinute: 120, burst: 2 }, () => now);
    b.take('a');
    b.take('a');
    expect(b.take('a').ok).toBe(false);
    now += 500; // 2 a second: one token back
    expect(b.take('a').ok).toBe(true);
    expect(b.take('a').ok).toBe(false);
    now += 60_000; // a long pause refills to burst, not beyond
    expect(b.take('a')).toMatchObject({ ok: true, remaining: 1 });
    expect(b.take('a')).toMatchObject({ ok: true, remaining: 0 });
    expect(b.take('a').ok).toBe(false);
  });

  it('computes long waits for slow limits', () => {
    const now = 0;
    const b = new TokenBuckets({ perMinute: 6, burst: 1 }, () => now);
    b.take('a');
    expect(b.take('a')).toMatchObject({ ok: false, retryAfterSeconds: 10 });
  });

  it('keeps one bucket per credential', () => {
    const b = new TokenBuckets({ perMinute: 60, burst: 1 }, () => 0);
    expect(b.take('a').ok).toBe(true);
    expect(b.take('a').ok).toBe(false);
    expect(b.take('b').ok).toBe(true);
  });

  it('rejects a limit it cannot enforce', () => {
    expect(() => new TokenBuckets({ perMinute: 0, burst: 1 })).toThrow(/perMinute/);
    expect(() => new TokenBuckets({ perMinute: 10, burst: 0 })).toThrow(/burst/);
  });
});
