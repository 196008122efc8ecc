import { describe, expect, it } from 'vitest';
import { FaultInjector, validateFaultRules } from '../../../../src/sandbox/kit/faults.js';

const q = (s = '') => new URLSearchParams(s);
const GET = (inj: FaultInjector, path = '/user', query = '') =>
  inj.decide('GET', 'GET /user', '/user', path, q(query));

describe('FaultInjector', () => {
  it('does nothing without rules', () => {
    expect(GET(new FaultInjector())).toEqual({ latencyMs: 0, terminal: undefined });
  });

  it('matches on method, route name or pattern, path regex and query', () => {
    const inj = new FaultInjector([
      { kind: 'status', status: 503, match: { method: 'put' } },
      { kind: 'status', status: 502, match: { route: '/user', query: { firstResult: '1000' } } },
      {
        kind: 'status',
        status: 500,
        match: { route: 'GET /user', pathRegex: '^/user$', query: { maxResults: '5' } },
      },
    ]);
    expect(GET(inj).terminal).toBeUndefined();
    expect(GET(inj, '/user', 'firstResult=1000&maxResults=10').terminal?.status).toBe(502);
    expect(GET(inj, '/user', 'maxResults=5').terminal?.status).toBe(500);
    expect(
      inj.decide('PUT', 'PUT /user/:id/profile', '/user/:id/profile', '/user/x/profile', q()).terminal
        ?.status,
    ).toBe(503);
    expect(
      inj.decide('GET', 'GET /user/count', '/user/count', '/user/count', q('maxResults=5')).terminal,
    ).toBeUndefined();
  });

  it('expires a rule after `times` faults and reports what is left', () => {
    const inj = new FaultInjector([{ kind: 'reset', times: 2 }]);
    expect(GET(inj).terminal?.kind).toBe('reset');
    expect(inj.list()).toEqual([{ kind: 'reset', times: 1 }]);
    expect(GET(inj).terminal?.kind).toBe('reset');
    expect(GET(inj).terminal).toBeUndefined();
    expect(inj.list()).toEqual([]);
  });

  it('adds latency and goes on to the next rule', () => {
    const inj = new FaultInjector([
      { kind: 'latency', latencyMs: 30 },
      { kind: 'latency', latencyMs: 20 },
      { kind: 'hang', match: { query: { hang: '1' } } },
    ]);
    expect(GET(inj)).toEqual({ latencyMs: 50, terminal: undefined });
    expect(GET(inj, '/user', 'hang=1')).toMatchObject({ latencyMs: 50, terminal: { kind: 'hang' } });
  });

  it('hits a share of requests, the same ones for the same seed', () => {
    const run = (seed: number) => {
      const inj = new FaultInjector([{ kind: 'status', rate: 0.2 }], seed);
      return Array.from({ length: 2000 }, () => (GET(inj).terminal ? 1 : 0));
    };
    const a = run(7);
    expect(run(7)).toEqual(a);
    expect(run(8)).not.toEqual(a);
    const hits = a.reduce<number>((s, x) => s + x, 0);
    expect(hits).toBeGreaterThan(300);
    expect(hits).toBeLessThan(500);
  });

  it('rejects malformed rules naming the field', () => {
    expect(() => validateFaultRules({})).toThrow(/array/);
    expect(() => validateFaultRules([{ kind: 'explode' }])).toThrow(/faults\[0\]\.kind/);
    expect(() => validateFaultRules([{ kind: 'status', rate: 2 }])).toThrow(/rate/);
    expect(() => validateFaultRules([{ kind: 'status', status: 42 }])).toThrow(/status/);
    expect(() => validateFaultRules([{ kind: 'status', times: 0 }])).toThrow(/times/);
    expect(() => validateFaultRules([{ kind: 'status', match: { pathRegex: '(' } }])).toThrow(/pathRegex/);
  });
});
