import { Writable } from 'node:stream';
import { MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildPath, createHttpClient, type HttpClientOptions } from '../../../src/connectors/http.js';
import {
  classify,
  DEFAULT_RETRY_AFTER_MS,
  parseRetryAfter,
  vendorErrorCode,
} from '../../../src/connectors/http-errors.js';
import { SyncError } from '../../../src/core/errors.js';
import { createLogger } from '../../../src/log.js';

const ORIGIN = 'https://api.vendor.test';
const http = { connectTimeoutMs: 1000, headersTimeoutMs: 1000, bodyTimeoutMs: 1000, connections: 4 };
const SECRET = 'Basic c2VjcmV0LXZhbHVlLTQy';

function logSink() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { lines, logger: createLogger({ level: 'debug', destination }) };
}

function netError(code: string): Error {
  return Object.assign(new Error(`boom ${code}`), { code });
}

let agent: MockAgent;
let sink: ReturnType<typeof logSink>;
let throttled: number;

beforeEach(() => {
  agent = new MockAgent();
  agent.disableNetConnect();
  sink = logSink();
  throttled = 0;
});
afterEach(async () => {
  await agent.close();
});

function client(extra: Partial<HttpClientOptions> = {}) {
  return createHttpClient({
    target: 'sunshine',
    baseUrl: ORIGIN,
    http,
    dispatcher: agent,
    logger: sink.logger,
    headers: () => ({ authorization: SECRET }),
    throttle: async () => {
      throttled++;
    },
    retry: { retries: 2, minDelayMs: 1, maxDelayMs: 2 },
    ...extra,
  });
}

describe('request shape', () => {
  it('sends method, encoded path and query, JSON body, auth and a request id', async () => {
    let seen: { path: string; method: string; headers: Record<string, string>; body: string } | undefined;
    agent
      .get(ORIGIN)
      .intercept({ path: () => true, method: 'PUT' })
      .reply((opts) => {
        seen = {
          path: opts.path,
          method: opts.method,
          headers: opts.headers as Record<string, string>,
          body: String(opts.body),
        };
        return { statusCode: 201, data: { profile: { id: 'p1' } } };
      });
    const res = await client().request({
      method: 'PUT',
      path: `/api/v2/user_profiles`,
      query: { identifier: 'identity:user:external_id:a:b/c%d+e f é', skip: undefined, n: 2 },
      body: { profile: { name: 'Ann' } },
      userId: 'a:b/c%d+e f é',
    });
    expect(seen?.path).toBe(
      '/api/v2/user_profiles?identifier=identity%3Auser%3Aexternal_id%3Aa%3Ab%2Fc%25d%2Be%20f%20%C3%A9&n=2',
    );
    expect(seen?.method).toBe('PUT');
    expect(seen?.headers.authorization).toBe(SECRET);
    expect(seen?.headers['content-type']).toBe('application/json');
    expect(seen?.headers.accept).toBe('application/json');
    expect(seen?.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.parse(seen!.body)).toEqual({ profile: { name: 'Ann' } });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ profile: { id: 'p1' } });
    expect(res.records).toHaveLength(1);
    expect(res.records[0]).toMatchObject({ method: 'PUT', status: 201, attempt: 1 });
    expect(res.records[0]!.requestId).toBe(seen?.headers['x-request-id']);
    expect(res.requestId).toBe(seen?.headers['x-request-id']);
  });

  it('keeps a base path of the base URL and lets per-request headers override', async () => {
    let seen: Record<string, string> = {};
    let path = '';
    agent
      .get(ORIGIN)
      .intercept({ path: () => true, method: 'GET' })
      .reply((opts) => {
        seen = opts.headers as Record<string, string>;
        path = opts.path;
        return { statusCode: 200, data: '' };
      });
    const res = await client({ baseUrl: `${ORIGIN}/engine-rest/` }).request({
      method: 'GET',
      path: '/user/count',
      headers: { authorization: 'Bearer other' },
    });
    expect(path).toBe('/engine-rest/user/count');
    expect(seen.authorization).toBe('Bearer other');
    expect(seen['content-type']).toBeUndefined();
    expect(res.body).toBeUndefined();
  });

  it('computes headers per try with the user id (Zephr mints a JWT per user)', async () => {
    const calls: (string | undefined)[] = [];
    const seen: string[] = [];
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/x', method: 'PUT' }).reply(503, {});
    pool.intercept({ path: '/x', method: 'PUT' }).reply((o) => {
      seen.push((o.headers as Record<string, string>).authorization!);
      return { statusCode: 200, data: {} };
    });
    let n = 0;
    await client({
      headers: ({ userId }) => {
        calls.push(userId);
        return { authorization: `Bearer t${++n}` };
      },
    }).request({ method: 'PUT', path: '/x', body: {}, userId: 'u1' });
    expect(calls).toEqual(['u1', 'u1']);
    expect(seen).toEqual(['Bearer t2']);
  });

  it('returns non-JSON bodies as undefined and non-2xx responses without throwing', async () => {
    agent.get(ORIGIN).intercept({ path: '/p', method: 'PATCH' }).reply(404, { code: 'user_not_found' });
    agent.get(ORIGIN).intercept({ path: '/h', method: 'GET' }).reply(400, '<html>nope</html>');
    const c = client();
    const r1 = await c.request({ method: 'PATCH', path: '/p', body: {} });
    expect(r1.status).toBe(404);
    expect(r1.body).toEqual({ code: 'user_not_found' });
    const r2 = await c.request({ method: 'GET', path: '/h' });
    expect(r2.status).toBe(400);
    expect(r2.body).toBeUndefined();
    expect(c.fail({ method: 'GET' }, r2).errorClass).toBe('permanent');
  });

  it('buildPath repeats array values and skips null', () => {
    expect(buildPath('/', '/a', { x: ['1', '2'], y: null, z: true })).toBe('/a?x=1&x=2&z=true');
  });
});

describe('retries', () => {
  for (const method of ['GET', 'PUT', 'DELETE', 'HEAD'] as const) {
    it(`${method}: retries a 5xx twice, then returns the last response; throttle per try`, async () => {
      const pool = agent.get(ORIGIN);
      pool.intercept({ path: '/r', method }).reply(500, { type: 'ServerError' }).times(3);
      const res = await client().request({ method, path: '/r' });
      expect(res.status).toBe(500);
      expect(res.records.map((r) => r.attempt)).toEqual([1, 2, 3]);
      expect(new Set(res.records.map((r) => r.requestId)).size).toBe(3);
      expect(throttled).toBe(3);
    });
  }

  it('GET: 500 then 200 succeeds on the second try', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/r', method: 'GET' }).reply(500, {});
    pool.intercept({ path: '/r', method: 'GET' }).reply(200, { ok: 1 });
    const res = await client().request({ method: 'GET', path: '/r' });
    expect(res.status).toBe(200);
    expect(res.records.map((r) => [r.attempt, r.status])).toEqual([
      [1, 500],
      [2, 200],
    ]);
  });

  it('retries network errors on GET and throws a transient SyncError when they persist', async () => {
    agent
      .get(ORIGIN)
      .intercept({ path: '/r', method: 'GET' })
      .replyWithError(netError('ECONNRESET'))
      .times(3);
    const err = await client()
      .request({ method: 'GET', path: '/r', userId: 'u9' })
      .catch((e) => e);
    expect(err).toBeInstanceOf(SyncError);
    expect(err.errorClass).toBe('transient');
    expect(err.vendorCode).toBe('ECONNRESET');
    expect(err.userId).toBe('u9');
    expect(throttled).toBe(3);
  });

  it('never retries PATCH or POST', async () => {
    agent.get(ORIGIN).intercept({ path: '/p', method: 'PATCH' }).reply(503, {});
    agent.get(ORIGIN).intercept({ path: '/q', method: 'POST' }).replyWithError(netError('ECONNRESET'));
    const c = client();
    const res = await c.request({ method: 'PATCH', path: '/p', body: {} });
    expect(res.status).toBe(503);
    expect(res.records).toHaveLength(1);
    await expect(c.request({ method: 'POST', path: '/q', body: {} })).rejects.toMatchObject({
      errorClass: 'transient',
    });
    expect(throttled).toBe(2);
  });

  it('never retries 429, 4xx or auth failures', async () => {
    for (const status of [429, 400, 401, 403, 404]) {
      agent
        .get(ORIGIN)
        .intercept({ path: `/s${status}`, method: 'GET' })
        .reply(status, {});
    }
    const c = client();
    for (const status of [429, 400, 401, 403, 404]) {
      const res = await c.request({ method: 'GET', path: `/s${status}` });
      expect(res.records).toHaveLength(1);
    }
    expect(throttled).toBe(5);
  });

  it('does not retry a permanent network error (no matching interceptor, TLS, ...)', async () => {
    agent.get(ORIGIN).intercept({ path: '/r', method: 'GET' }).replyWithError(netError('CERT_HAS_EXPIRED'));
    const err = await client()
      .request({ method: 'GET', path: '/r' })
      .catch((e) => e);
    expect(err.errorClass).toBe('permanent');
    expect(throttled).toBe(1);
  });

  it('retry: false sends once', async () => {
    agent.get(ORIGIN).intercept({ path: '/r', method: 'GET' }).reply(502, {});
    const res = await client({ retry: false }).request({ method: 'GET', path: '/r' });
    expect(res.records).toHaveLength(1);
  });
});

describe('classify', () => {
  const base = { target: 'prelude' as const, method: 'PATCH', path: '/v2/x', userId: 'u1', requestId: 'r1' };
  const table: [number, string][] = [
    [400, 'permanent'],
    [404, 'permanent'],
    [409, 'permanent'],
    [422, 'permanent'],
    [401, 'auth'],
    [403, 'auth'],
    [408, 'transient'],
    [429, 'rate_limited'],
    [500, 'transient'],
    [502, 'transient'],
    [503, 'transient'],
    [504, 'transient'],
  ];
  for (const [status, cls] of table) {
    it(`HTTP ${status} -> ${cls}`, () => {
      const e = classify({ ...base, response: { status, body: { code: 'some_code' } } });
      expect(e.errorClass).toBe(cls);
      expect(e.status).toBe(status);
      expect(e.vendorCode).toBe('some_code');
      expect(e.target).toBe('prelude');
      expect(e.userId).toBe('u1');
      expect(e.requestId).toBe('r1');
      expect(e.message).toContain('prelude');
      expect(e.message).toContain('u1');
      expect(e.message).toContain('PATCH /v2/x');
      expect(e.message).toContain(String(status));
      expect(e.message).toContain('some_code');
    });
  }

  const codes: [string, string][] = [
    ['UND_ERR_SOCKET', 'transient'],
    ['UND_ERR_CONNECT_TIMEOUT', 'transient'],
    ['UND_ERR_HEADERS_TIMEOUT', 'transient'],
    ['UND_ERR_BODY_TIMEOUT', 'transient'],
    ['ECONNRESET', 'transient'],
    ['ECONNREFUSED', 'transient'],
    ['ENOTFOUND', 'transient'],
    ['EAI_AGAIN', 'transient'],
    ['EPIPE', 'transient'],
    ['ETIMEDOUT', 'transient'],
    ['CERT_HAS_EXPIRED', 'permanent'],
    ['UND_MOCK_ERR_MOCK_NOT_MATCHED', 'permanent'],
  ];
  for (const [code, cls] of codes) {
    it(`error code ${code} -> ${cls}`, () => {
      const e = classify({ ...base, error: netError(code) });
      expect(e.errorClass).toBe(cls);
      expect(e.vendorCode).toBe(code);
      expect(e.status).toBeUndefined();
    });
  }

  it('classifies by code, not message: a "timeout" message with no code is permanent', () => {
    expect(classify({ ...base, error: new Error('ETIMEDOUT socket hang up 503') }).errorClass).toBe(
      'permanent',
    );
  });

  it('finds the code on a cause or an AggregateError', () => {
    expect(
      classify({ ...base, error: new TypeError('fetch failed', { cause: netError('ECONNREFUSED') }) })
        .errorClass,
    ).toBe('transient');
    expect(classify({ ...base, error: new AggregateError([netError('ECONNREFUSED')]) }).errorClass).toBe(
      'transient',
    );
  });

  it('429: Retry-After in delta seconds', () => {
    const e = classify({ ...base, response: { status: 429, headers: { 'retry-after': '7' } } });
    expect(e.retryAfterMs).toBe(7000);
    expect(e.retryable).toBe(true);
  });

  it('429: Retry-After as HTTP-date', () => {
    const now = Date.parse('2026-11-23T18:00:00Z');
    const e = classify({
      ...base,
      now,
      response: { status: 429, headers: { 'retry-after': 'Mon, 23 Nov 2026 18:00:30 GMT' } },
    });
    expect(e.retryAfterMs).toBe(30_000);
  });

  it('429: absent or garbage Retry-After -> the default', () => {
    expect(classify({ ...base, response: { status: 429 } }).retryAfterMs).toBe(DEFAULT_RETRY_AFTER_MS);
    expect(
      classify({ ...base, response: { status: 429, headers: { 'retry-after': 'soon' } } }).retryAfterMs,
    ).toBe(DEFAULT_RETRY_AFTER_MS);
    expect(parseRetryAfter('-5')).toBe(DEFAULT_RETRY_AFTER_MS);
    expect(parseRetryAfter('Mon, 01 Jan 2001 00:00:00 GMT')).toBe(0);
    expect(parseRetryAfter(['3', '9'])).toBe(3000);
  });

  it('extracts vendor codes generically and only token-like ones', () => {
    expect(vendorErrorCode({ code: 'user_not_found', message: 'x' })).toBe('user_not_found');
    expect(vendorErrorCode({ errors: [{ code: 'RecordNotFound', title: 't' }] })).toBe('RecordNotFound');
    expect(vendorErrorCode({ type: 'InvalidRequestException', message: 'm' })).toBe(
      'InvalidRequestException',
    );
    expect(vendorErrorCode({ code: 'free text with spaces and a secret' })).toBeUndefined();
    expect(vendorErrorCode('oops')).toBeUndefined();
  });
});

describe('secrets', () => {
  it('no header value reaches an error message or a log line', async () => {
    agent
      .get(ORIGIN)
      .intercept({ path: '/a', method: 'GET' })
      .reply(401, { errors: [{ code: 'Unauthorized' }] });
    agent
      .get(ORIGIN)
      .intercept({ path: '/b', method: 'GET' })
      .replyWithError(netError('ECONNREFUSED'))
      .times(3);
    const c = client();
    const res = await c.request({ method: 'GET', path: '/a', userId: 'u1' });
    const authErr = c.fail({ method: 'GET', userId: 'u1' }, res);
    expect(authErr.errorClass).toBe('auth');
    const netErr = (await c.request({ method: 'GET', path: '/b' }).catch((e) => e)) as SyncError;
    expect(netErr).toBeInstanceOf(SyncError);
    for (const text of [authErr.message, JSON.stringify(authErr.toJSON()), netErr.message, ...sink.lines]) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain('c2VjcmV0');
    }
    // the debug log carries the request ids
    expect(sink.lines.some((l) => l.includes(res.requestId))).toBe(true);
  });
});
