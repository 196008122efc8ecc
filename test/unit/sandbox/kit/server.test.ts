import { connect } from 'node:net';
import { errors, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { type Sim, type SimOptions, startSim } from '../../../../src/sandbox/kit/index.js';
import { echoVendor } from './echo-vendor.js';

const auth = { authorization: 'Bearer alice' };
let sim: Sim | undefined;

async function start(options: SimOptions = {}): Promise<Sim> {
  sim = await startSim(echoVendor(), { port: 0, ...options });
  return sim;
}

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = auth) {
  const res = await request(`${sim!.url}${path}`, {
    method: method as 'GET',
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

describe('startSim', () => {
  it('routes, authenticates and hands decoded params and the credential to the handler', async () => {
    await start();
    expect(sim!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await call('GET', '/items/a%2Fb')).toMatchObject({
      status: 200,
      body: { id: 'a/b', credential: 'alice' },
    });
    expect(await call('GET', '/items/x', undefined, {})).toMatchObject({
      status: 401,
      body: { err: 'unauthorized' },
    });
  });

  it('parses JSON bodies and marks invalid ones', async () => {
    await start();
    expect((await call('PUT', '/items/1', { a: 1 })).body).toEqual({ invalid: false, body: { a: 1 } });
    expect((await call('PUT', '/items/1', '{nope')).body).toEqual({ invalid: true, body: null });
    expect((await call('PUT', '/items/1')).body).toEqual({ invalid: false, body: null });
  });

  it('answers the vendor error body for 404, 405, 400 encoding, 413 and a handler crash', async () => {
    await start({ maxBodyBytes: 10 });
    expect(await call('GET', '/nope')).toMatchObject({
      status: 404,
      body: { err: expect.stringContaining('/nope') },
    });
    const r405 = await call('DELETE', '/items/1');
    expect(r405).toMatchObject({ status: 405 });
    expect(r405.headers.allow).toBe('GET, PUT');
    expect((await call('GET', '/items/%E0%A4%A')).status).toBe(400);
    expect((await call('PUT', '/items/1', { long: 'x'.repeat(20) })).status).toBe(413);
    expect(await call('GET', '/boom')).toEqual(
      expect.objectContaining({ status: 500, body: { err: 'kaboom' } }),
    );
  });

  it('rate-limits per credential with the vendor 429 and Retry-After; inspection is never limited', async () => {
    await start({ rateLimit: { perMinute: 1, burst: 2 } });
    expect((await call('GET', '/items/1')).status).toBe(200);
    expect((await call('GET', '/items/1')).status).toBe(200);
    const limited = await call('GET', '/items/1');
    expect(limited).toMatchObject({ status: 429, body: { err: 'slow down' } });
    expect(limited.headers['retry-after']).toBe('60');
    expect(limited.headers['x-limit']).toBe('1');
    expect(limited.headers['x-remaining']).toBe('0');
    expect((await call('GET', '/items/1', undefined, { authorization: 'Bearer bob' })).status).toBe(200);
    for (let i = 0; i < 5; i++)
      expect((await call('GET', '/__sandbox/counters', undefined, {})).status).toBe(200);
    // Lifted at run time.
    expect(await call('PUT', '/__sandbox/rate-limit', null)).toMatchObject({ status: 200, body: null });
    expect((await call('GET', '/items/1')).status).toBe(200);
    expect(await call('PUT', '/__sandbox/rate-limit', { perMinute: 5, burst: 1 })).toMatchObject({
      status: 200,
      body: { perMinute: 5, burst: 1 },
    });
    expect((await call('GET', '/__sandbox/rate-limit')).body).toEqual({ perMinute: 5, burst: 1 });
    expect((await call('PUT', '/__sandbox/rate-limit', { perMinute: 0, burst: 1 })).status).toBe(400);
  });

  it('injects a status fault with the vendor body, `times` times', async () => {
    await start({ faults: [{ kind: 'status', status: 503, times: 2, match: { route: 'GET /items/:id' } }] });
    expect(await call('GET', '/items/1')).toMatchObject({
      status: 503,
      body: { err: 'injected fault: 503' },
    });
    expect((await call('GET', '/__sandbox/faults')).body).toEqual([
      { kind: 'status', status: 503, times: 1, match: { route: 'GET /items/:id' } },
    ]);
    expect((await call('PUT', '/items/1', {})).status).toBe(200);
    expect((await call('GET', '/items/1')).status).toBe(503);
    expect((await call('GET', '/items/1')).status).toBe(200);
  });

  it('resets the connection for a reset fault', async () => {
    await start();
    await call('PUT', '/__sandbox/faults', [{ kind: 'reset', match: { query: { page: '3' } } }]);
    expect((await call('GET', '/items/1?page=2')).status).toBe(200);
    const err = await call('GET', '/items/1?page=3').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(errors.SocketError);
    expect(sim!.counters().byRoute['GET /items/:id']).toEqual({ '0': 1, '200': 1 });
  });

  it('never answers a hang: the client timeout fires, and close() still returns', async () => {
    await start({ faults: [{ kind: 'hang' }] });
    const err = await request(`${sim!.url}/items/1`, { headers: auth, headersTimeout: 200 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(errors.HeadersTimeoutError);
    const hung = request(`${sim!.url}/items/2`, { headers: auth }).catch((e: unknown) => e);
    await expect.poll(() => sim!.requests().length).toBe(2);
    await sim!.close();
    expect(await hung).toBeInstanceOf(Error);
    sim = undefined;
  });

  it('answers a body fault with status 200 and a body that is not JSON, as given or an HTML page', async () => {
    await start({
      faults: [
        { kind: 'body', times: 1 },
        { kind: 'body', status: 203, body: '{"trunc', contentType: 'application/json', times: 1 },
      ],
    });
    const first = await request(`${sim!.url}/items/1`, { headers: auth });
    expect(first.statusCode).toBe(200);
    expect(first.headers['content-type']).toMatch(/^text\/html/);
    expect(await first.body.text()).toMatch(/^<html>/);
    const second = await request(`${sim!.url}/items/1`, { headers: auth });
    expect(second.statusCode).toBe(203);
    expect(second.headers['content-type']).toBe('application/json');
    expect(await second.body.text()).toBe('{"trunc');
    expect((await call('GET', '/items/1')).body).toMatchObject({ id: '1' });
    expect(sim!.counters().byRoute['GET /items/:id']).toEqual({ '200': 2, '203': 1 });
    await expect(call('PUT', '/__sandbox/faults', [{ kind: 'body', body: 1 }])).resolves.toMatchObject({
      status: 400,
      body: { error: 'faults[0].body must be a string (sent verbatim)' },
    });
  });

  it('delays a request for a latency fault, then answers normally', async () => {
    await start({ faults: [{ kind: 'latency', latencyMs: 50, times: 1 }] });
    expect((await call('GET', '/items/1')).status).toBe(200);
    expect(sim!.faults()).toEqual([]);
  });

  it('counts by route and status and logs every request with its credential', async () => {
    await start();
    const t0 = Date.now();
    await call('GET', '/items/1');
    await call('GET', '/items/2', undefined, { authorization: 'Bearer bob' });
    await call('GET', '/items/3', undefined, {});
    await call('GET', '/nope');
    expect((await call('GET', '/__sandbox/counters')).body).toEqual({
      byRoute: { 'GET /items/:id': { '200': 2, '401': 1 }, unmatched: { '404': 1 } },
      total: 4,
    });
    const log = (await call('GET', `/__sandbox/requests?since=${t0}`)).body as {
      credential: string;
      status: number;
    }[];
    expect(log.map((e) => [e.credential, e.status])).toEqual([
      ['alice', 200],
      ['bob', 200],
      ['anonymous', 401],
      ['anonymous', 404],
    ]);
    expect((await call('GET', `/__sandbox/requests?since=${Date.now() + 60_000}`)).body).toEqual([]);
    expect((await call('POST', '/__sandbox/counters/reset')).status).toBe(204);
    expect(sim!.counters()).toEqual({ byRoute: {}, total: 0 });
  });

  it('resets vendor state, counters, faults and rate limit to the start options', async () => {
    await start({ faults: [{ kind: 'status', match: { method: 'PUT' } }] });
    await call('PUT', '/__sandbox/faults', []);
    await call('PUT', '/__sandbox/rate-limit', { perMinute: 1, burst: 1 });
    await call('GET', '/items/1');
    expect((await call('POST', '/__sandbox/reset')).status).toBe(204);
    expect((await call('GET', '/__sandbox/state')).body).toEqual({ resets: 1 });
    expect(sim!.counters().total).toBe(0);
    expect(sim!.rateLimit()).toBeNull();
    expect(sim!.faults()).toEqual([{ kind: 'status', match: { method: 'PUT' } }]);
  });

  it('answers inspection errors as {error}', async () => {
    await start();
    expect(await call('PUT', '/__sandbox/faults', [{ kind: 'nope' }])).toMatchObject({
      status: 400,
      body: { error: expect.stringContaining('kind') },
    });
    expect((await call('PUT', '/__sandbox/faults', '{bad')).status).toBe(400);
    expect((await call('GET', '/__sandbox/nothing')).status).toBe(404);
    expect((await call('POST', '/__sandbox/state')).status).toBe(405);
    expect((await call('DELETE', '/__sandbox/faults')).status).toBe(204);
  });

  it('survives a client that disconnects in the middle of a body', async () => {
    await start();
    const socket = connect(sim!.port, '127.0.0.1');
    await new Promise<void>((r) => socket.once('connect', () => r()));
    socket.write(
      'PUT /items/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nContent-Length: 100\r\n\r\n{"a":',
    );
    socket.destroy();
    await new Promise((r) => socket.once('close', r));
    expect((await call('GET', '/items/2')).status).toBe(200);
  });
});
