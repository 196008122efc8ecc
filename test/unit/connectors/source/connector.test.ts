import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SourceConfig } from '../../../../src/config/schema.js';
import {
  createSourceConnector,
  isSourceOrderChanged,
  SourceOrderChangedError,
} from '../../../../src/connectors/source/connector.js';
import { SyncError } from '../../../../src/core/errors.js';
import type { SourceRecord } from '../../../../src/core/types.js';
import { createLogger } from '../../../../src/log.js';

const logger = createLogger({ level: 'silent' });
const http = { connectTimeoutMs: 1000, headersTimeoutMs: 2000, bodyTimeoutMs: 2000, connections: 4 };
const ORIGIN = 'https://idp.example.test';

async function collect(it: AsyncIterable<SourceRecord>): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const r of it) out.push(r);
  return out;
}

describe('source connector: request shape (MockAgent)', () => {
  let agent: MockAgent;
  beforeEach(() => {
    agent = new MockAgent();
    agent.disableNetConnect();
  });
  afterEach(() => agent.close());

  function connector(config: Partial<SourceConfig> = {}) {
    return createSourceConnector(
      {
        config: {
          url: `${ORIGIN}/engine-rest`,
          pageSize: 2,
          readAhead: 0,
          username: 'svc',
          password: 'p@ss:w',
          ...config,
        },
        http,
      },
      { logger, dispatcher: agent },
    );
  }

  it('pages GET /user with firstResult, maxResults, sortBy=userId, sortOrder=asc and basic auth', async () => {
    const seen: { path: string; auth: string }[] = [];
    agent
      .get(ORIGIN)
      .intercept({ path: (p) => p.startsWith('/engine-rest/user?'), method: 'GET' })
      .reply((o) => {
        seen.push({ path: o.path, auth: (o.headers as Record<string, string>).authorization! });
        const q = new URL(o.path, ORIGIN).searchParams;
        const first = Number(q.get('firstResult'));
        const all = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];
        return { statusCode: 200, data: all.slice(first, first + Number(q.get('maxResults'))) };
      })
      .times(2);
    const pages: number[] = [];
    const records = await collect(connector().scan({ onPage: (p) => pages.push(p.size) }));
    expect(records.map((r) => r.ok && r.user.id)).toEqual(['a', 'b', 'c']);
    expect(pages).toEqual([2, 1]);
    expect(seen.map((s) => s.path)).toEqual([
      '/engine-rest/user?firstResult=0&maxResults=2&sortBy=userId&sortOrder=asc',
      // Every page after the first starts on the last user of the page before (issue 8.1).
      '/engine-rest/user?firstResult=1&maxResults=3&sortBy=userId&sortOrder=asc',
    ]);
    expect(seen[0]!.auth).toBe(`Basic ${Buffer.from('svc:p@ss:w').toString('base64')}`);
  });

  it('bearer auth with SOURCE_TOKEN; count(); check()', async () => {
    let auth = '';
    agent
      .get(ORIGIN)
      .intercept({ path: '/engine-rest/user/count', method: 'GET' })
      .reply((o) => {
        auth = (o.headers as Record<string, string>).authorization!;
        return { statusCode: 200, data: { count: 42 } };
      })
      .times(2);
    const c = connector({ username: undefined, password: undefined, token: 'tok-123' });
    expect(await c.count()).toBe(42);
    await c.check();
    expect(auth).toBe('Bearer tok-123');
  });

  it('getUser encodes the id (a / double-encoded, vendor-facts.md) and maps 404 to null', async () => {
    const pool = agent.get(ORIGIN);
    pool
      .intercept({ path: '/engine-rest/user/a%252Fb%3Ac%25%20d%2B%C3%A9/profile', method: 'GET' })
      .reply(200, { id: 'a/b:c% d+é', firstName: 'A', lastName: null, email: '' });
    pool
      .intercept({ path: '/engine-rest/user/nobody/profile', method: 'GET' })
      .reply(404, { type: 'InvalidRequestException', message: 'User with id nobody does not exist' });
    const c = connector();
    expect(await c.getUser('a/b:c% d+é')).toEqual({
      ok: true,
      user: { id: 'a/b:c% d+é', firstName: 'A', email: '' },
    });
    expect(await c.getUser('nobody')).toBeNull();
  });

  it('getUser: 401 is an auth SyncError naming the source, the user and the status, no secret', async () => {
    agent
      .get(ORIGIN)
      .intercept({ path: '/engine-rest/user/u1/profile', method: 'GET' })
      .reply(401, { type: 'AuthenticationException' });
    const err = (await connector()
      .getUser('u1')
      .catch((e) => e)) as SyncError;
    expect(err).toBeInstanceOf(SyncError);
    expect(err.errorClass).toBe('auth');
    expect(err.message).toMatch(
      /^source: GET \/engine-rest\/user\/u1\/profile \(user u1\) failed: HTTP 401 AuthenticationException/,
    );
    expect(err.message).not.toContain('p@ss');
    expect(err.message).not.toContain(Buffer.from('svc:p@ss:w').toString('base64'));
  });

  it('a count that is not an integer is a permanent error', async () => {
    agent
      .get(ORIGIN)
      .intercept({ path: '/engine-rest/user/count', method: 'GET' })
      .reply(200, { count: '12' });
    await expect(connector().count()).rejects.toMatchObject({
      errorClass: 'permanent',
      vendorCode: 'malformed_response',
    });
  });

  it('a page that is not an array is a permanent SyncError', async () => {
    agent
      .get(ORIGIN)
      .intercept({ path: () => true, method: 'GET' })
      .reply(200, { users: [] });
    await expect(collect(connector().scan())).rejects.toMatchObject({ errorClass: 'permanent' });
  });
});

/** A scripted identity service: `users` sorted by id, with optional per-page failures. */
interface Scripted {
  url: string;
  requests: URL[];
  served: number;
  failPage?: (firstResult: number, hit: number) => number | undefined;
  /** Called after each list page answered (1-based count): the list may change in between. */
  afterPage?: (n: number) => void;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function identityService(users: unknown[], failPage?: Scripted['failPage']): Promise<Scripted> {
  const state: Scripted = { url: '', requests: [], served: 0, failPage };
  const hits = new Map<number, number>();
  let pagesServed = 0;
  const server = createServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    state.requests.push(u);
    if (u.pathname === '/user/count') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count: users.length }));
      return;
    }
    if (u.pathname.endsWith('/profile')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'NotFound' }));
      return;
    }
    const idIn = u.searchParams.get('idIn');
    if (idIn !== null) {
      const want = new Set(idIn.split(','));
      const found = users.filter((x) => want.has((x as { id?: string }).id ?? ''));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(found));
      return;
    }
    const first = Number(u.searchParams.get('firstResult'));
    const max = Number(u.searchParams.get('maxResults'));
    const hit = (hits.get(first) ?? 0) + 1;
    hits.set(first, hit);
    const fail = state.failPage?.(first, hit);
    if (fail) {
      res
        .writeHead(fail, { 'content-type': 'application/json' })
        .end(JSON.stringify({ type: 'ServerError' }));
      return;
    }
    const page = users.slice(first, first + max);
    state.served += page.length;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(page));
    state.afterPage?.(++pagesServed);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

function connectorFor(url: string, pageSize: number) {
  return createSourceConnector(
    { config: { url, pageSize, readAhead: 0, username: 'u', password: 'p' }, http },
    { logger },
  );
}

describe('source connector against a scripted server', () => {
  it('streams 20,000 users and never reads ahead more than one page (flat memory by construction)', async () => {
    const n = 20_000;
    const pageSize = 500;
    const users = Array.from({ length: n }, (_, i) => ({
      id: `user-${String(i).padStart(6, '0')}`,
      firstName: 'F',
      lastName: 'L',
      email: `u${i}@example.test`,
    }));
    const s = await identityService(users);
    const c = connectorFor(s.url, pageSize);
    let consumed = 0;
    let maxAhead = 0;
    let lastId = '';
    for await (const r of c.scan()) {
      // records the server has handed out but the consumer has not seen yet
      // (each page after the first repeats one record already consumed: the overlap)
      maxAhead = Math.max(maxAhead, s.served - (s.requests.length - 1) - consumed);
      expect(r.ok).toBe(true);
      if (r.ok) {
        expect(r.user.id > lastId).toBe(true);
        lastId = r.user.id;
      }
      consumed++;
    }
    expect(consumed).toBe(n);
    expect(maxAhead).toBeLessThanOrEqual(pageSize);
    // n is a multiple of the page size: one extra request finds the empty last page
    expect(s.requests).toHaveLength(n / pageSize + 1);
    for (const u of s.requests) {
      expect(u.searchParams.get('sortBy')).toBe('userId');
      expect(u.searchParams.get('sortOrder')).toBe('asc');
    }
    await c.close();
  });

  it('stops on a short page without an extra request', async () => {
    const s = await identityService(Array.from({ length: 7 }, (_, i) => ({ id: `u${i}` })));
    const c = connectorFor(s.url, 3);
    expect(await collect(c.scan())).toHaveLength(7);
    // 0-2, then 2-5 (2 overlapping), then 5-6 (5 overlapping): short, the last.
    expect(s.requests.map((u) => u.searchParams.get('firstResult'))).toEqual(['0', '2', '5']);
    await c.close();
  });

  it('the page size option overrides the config', async () => {
    const s = await identityService(Array.from({ length: 5 }, (_, i) => ({ id: `u${i}` })));
    const c = connectorFor(s.url, 500);
    await collect(c.scan({ pageSize: 2 }));
    expect(s.requests.map((u) => u.searchParams.get('maxResults'))).toEqual(['2', '3', '3']);
    await c.close();
  });

  it('invalid records become rejected records naming the field; the stream goes on', async () => {
    const users = [
      { id: 'a1', firstName: 'Ann' },
      { firstName: 'no id' },
      { id: 42 },
      { id: '' },
      { id: 'bad\u0000id' },
      { id: 'x'.repeat(257) },
      { id: 'b2', firstName: 7 },
      { id: 'b3', email: `${'e'.repeat(321)}` },
      { id: 'b4', lastName: 'L'.repeat(513) },
      'not an object',
      null,
      { id: 'z9', firstName: null, lastName: '', email: 'MiXeD@Case.ORG', extra: { ignored: true } },
      { id: '.', firstName: 'Dot' },
      { id: '..', firstName: 'Dots' },
      { id: 'c1', firstName: 'Ann', lastName: null, email: 'a@example.com\r\nBcc: x@evil.test' },
      { id: 'c2', firstName: 'Ann\nB', lastName: null, email: null },
      { id: 'c3', firstName: null, lastName: 'Tab\there', email: null },
    ];
    const s = await identityService(users);
    const records = await collect(connectorFor(s.url, 5).scan());
    expect(records).toEqual([
      { ok: true, user: { id: 'a1', firstName: 'Ann' } },
      { ok: false, reason: 'id: missing' },
      { ok: false, reason: 'id: expected a string' },
      { ok: false, reason: 'id: empty' },
      { ok: false, reason: 'id: contains control characters' },
      { ok: false, reason: 'id: longer than 256 characters' },
      { ok: false, userId: 'b2', reason: 'firstName: expected a string or null' },
      { ok: false, userId: 'b3', reason: 'email: longer than 320 characters' },
      { ok: false, userId: 'b4', reason: 'lastName: longer than 512 characters' },
      { ok: false, reason: 'record: expected a JSON object' },
      { ok: false, reason: 'record: expected a JSON object' },
      { ok: true, user: { id: 'z9', lastName: '', email: 'MiXeD@Case.ORG' } },
      { ok: false, userId: '.', reason: 'id: is "." or "..", which URLs cannot carry as a path segment' },
      { ok: false, userId: '..', reason: 'id: is "." or "..", which URLs cannot carry as a path segment' },
      { ok: false, userId: 'c1', reason: 'email: contains control characters' },
      { ok: false, userId: 'c2', reason: 'firstName: contains control characters' },
      { ok: false, userId: 'c3', reason: 'lastName: contains control characters' },
    ]);
  });

  it('a page that keeps failing surfaces as a transient SyncError after the HTTP retries', async () => {
    const users = Array.from({ length: 10 }, (_, i) => ({ id: `u${i}` }));
    const s = await identityService(users, (first) => (first === 3 ? 503 : undefined));
    const c = connectorFor(s.url, 2);
    const seen: string[] = [];
    const err = await (async () => {
      for await (const r of c.scan()) if (r.ok) seen.push(r.user.id);
    })().catch((e) => e);
    expect(err).toBeInstanceOf(SyncError);
    expect(err.errorClass).toBe('transient');
    expect(err.status).toBe(503);
    expect(err.target).toBe('source');
    expect(err.message).toContain('firstResult=3');
    expect(seen).toEqual(['u0', 'u1', 'u2', 'u3']);
    // 1 try + 2 HTTP-level retries of the failing page
    expect(s.requests.filter((u) => u.searchParams.get('firstResult') === '3')).toHaveLength(3);
    await c.close();
  });

  it('a page failing once is retried and the scan completes', async () => {
    const users = Array.from({ length: 6 }, (_, i) => ({ id: `u${i}` }));
    const s = await identityService(users, (first, hit) => (first === 1 && hit === 1 ? 500 : undefined));
    const c = connectorFor(s.url, 2);
    expect(await collect(c.scan())).toHaveLength(6);
    await c.close();
  });

  it('an abort signal ends the scan between pages', async () => {
    const s = await identityService(Array.from({ length: 10 }, (_, i) => ({ id: `u${i}` })));
    const c = connectorFor(s.url, 2);
    const ac = new AbortController();
    let n = 0;
    const err = await (async () => {
      for await (const _ of c.scan({ signal: ac.signal })) if (++n === 3) ac.abort();
    })().catch((e) => e);
    expect(err?.name).toBe('AbortError');
    expect(s.requests.length).toBe(2);
    await c.close();
  });

  it('the list moving under the scan (a user of a page already read leaves) is an order_changed error, not a skip', async () => {
    const users = Array.from({ length: 10 }, (_, i) => ({ id: `u${i}` }));
    const s = await identityService(users);
    s.afterPage = (n) => {
      if (n === 2) users.splice(1, 1); // u1 leaves after pages 1-2 were read
    };
    const c = connectorFor(s.url, 3);
    const seen: string[] = [];
    const err = await (async () => {
      for await (const r of c.scan()) if (r.ok) seen.push(r.user.id);
    })().catch((e) => e);
    expect(isSourceOrderChanged(err)).toBe(true);
    expect(err).toBeInstanceOf(SourceOrderChangedError);
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/page 3, firstResult=5/);
    // Plain offset paging would have gone on with u7 and never returned u6.
    expect(seen).toEqual(['u0', 'u1', 'u2', 'u3', 'u4', 'u5']);
    await c.close();
  });

  it('a user inserted before the read position is noticed too (it would be read twice)', async () => {
    const users = Array.from({ length: 10 }, (_, i) => ({ id: `u${i}` }));
    const s = await identityService(users);
    s.afterPage = (n) => {
      if (n === 1) users.unshift({ id: 'a-new' });
    };
    const c = connectorFor(s.url, 3);
    const err = await collect(c.scan()).catch((e) => e);
    expect(isSourceOrderChanged(err)).toBe(true);
    await c.close();
  });

  it('getUser refuses the ids . and .. without a request (they cannot be a path segment)', async () => {
    const s = await identityService([{ id: 'u1' }]);
    const c = connectorFor(s.url, 3);
    for (const id of ['.', '..']) {
      expect(await c.getUser(id)).toEqual({
        ok: false,
        userId: id,
        reason: 'id: is "." or "..", which URLs cannot carry as a path segment',
      });
    }
    expect(s.requests).toHaveLength(0);
    await c.close();
  });

  it('getUsers asks GET /user?idIn= in batches of 100; ids with a comma go one by one; unknown ids are absent', async () => {
    const users = Array.from({ length: 250 }, (_, i) => ({
      id: `u${i}`,
      firstName: null,
      lastName: null,
      email: null,
    }));
    const s = await identityService(users);
    const c = connectorFor(s.url, 3);
    const ids = [...users.map((u) => u.id), 'gone-1', 'a,b'];
    const found = await c.getUsers(ids);
    expect(found.size).toBe(250);
    expect(found.get('u7')).toEqual({ ok: true, user: { id: 'u7' } });
    expect(found.has('gone-1')).toBe(false);
    const lists = s.requests.filter((u) => u.pathname === '/user' && u.searchParams.has('idIn'));
    expect(lists.map((u) => u.searchParams.get('idIn')!.split(',').length)).toEqual([100, 100, 51]);
    expect(s.requests.some((u) => u.pathname === `/user/${encodeURIComponent('a,b')}/profile`)).toBe(true);
    await c.close();
  });
});

describe('getUsers against a bad answer', () => {
  it('a user that idIn did not ask for is a malformed answer, never a partial truth', async () => {
    const server = createServer((_req, res) => {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify([{ id: 'someone-else' }]));
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const c = connectorFor(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 3);
    const err = await c.getUsers(['u1']).catch((e) => e);
    expect(err).toBeInstanceOf(SyncError);
    expect(err.vendorCode).toBe('malformed_response');
    await c.close();
  });
});
