import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/config-error.js';
import { tickMillis, validateSchedule } from '../../../src/daemon/scheduler.js';

describe('validateSchedule (SYNC_SCHEDULE)', () => {
  it.each(['*/15 * * * *', '0 3 * * *', '*/2 * * * * *', '0 */5 * * 1-5', '  */15 * * * *  '])(
    'accepts %j',
    (expr) => {
      expect(() => validateSchedule(expr)).not.toThrow();
    },
  );

  it.each(['', 'every 15 minutes', '61 * * * *', '* * *', '* * * * * * *', '*/15 * * * * * * *'])(
    'refuses %j with a ConfigError naming SYNC_SCHEDULE',
    (expr) => {
      let err: unknown;
      try {
        validateSchedule(expr);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/^SYNC_SCHEDULE: /);
      expect((err as Error).message).toContain('*/15 * * * *');
    },
  );
});

describe('tickMillis', () => {
  it('reads the tick from the job scheduler id repeat:<scheduler>:<millis>', () => {
    expect(tickMillis({ id: 'repeat:reconcile:1795459140000', opts: {}, timestamp: 1 })).toBe(1795459140000);
  });
  it('falls back to prevMillis, then the job timestamp', () => {
    expect(tickMillis({ id: 'x', opts: { prevMillis: 42 } as never, timestamp: 7 })).toBe(42);
    expect(tickMillis({ id: 'x', opts: {}, timestamp: 7 })).toBe(7);
  });
});
