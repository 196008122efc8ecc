import { describe, expect, it } from 'vitest';
import { RequestLog } from '../../../../src/sandbox/kit/request-log.js';

describe('RequestLog', () => {
  it('counts by route and status', () => {
    const log = new RequestLog(10);
    log.record(1, 'PUT', 'PUT /a/:id', 204, 'c');
    log.record(2, 'PUT', 'PUT /a/:id', 204, 'c');
    log.record(3, 'PUT', 'PUT /a/:id', 429, 'c');
    log.record(4, 'GET', 'GET /a', 0, 'c');
    expect(log.counters()).toEqual({
      byRoute: { 'PUT /a/:id': { '204': 2, '429': 1 }, 'GET /a': { '0': 1 } },
      total: 4,
    });
  });

  it('keeps the last `capacity` entries, oldest first, filtered by time', () => {
    const log = new RequestLog(3);
    for (let t = 1; t <= 5; t++) log.record(t, 'GET', 'GET /a', 200, `c${t}`);
    expect(log.since().map((e) => e.t)).toEqual([3, 4, 5]);
    expect(log.since(4)).toEqual([
      { t: 4, method: 'GET', route: 'GET /a', status: 200, credential: 'c4' },
      { t: 5, method: 'GET', route: 'GET /a', status: 200, credential: 'c5' },
    ]);
    expect(log.counters().total).toBe(5);
    log.clear();
    expect(log.since()).toEqual([]);
    expect(log.counters()).toEqual({ byRoute: {}, total: 0 });
  });
});
