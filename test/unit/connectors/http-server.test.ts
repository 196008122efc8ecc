import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpClient } from '../../../src/connectors/http.js';
import { SyncError } from '../../../src/core/errors.js';
import { createLogger } from '../../../src/log.js';

/**
 * The HTTP layer against a real loopback server that scripts failures (undici's own testing habit):
 * each request takes the next step of the script.
 */
type Step = 'reset' | 'hang' | 'hang-body' | number;

interface Scripted {
  url: string;
  hits: string[];
  close(): Promise<void>;
}

const servers: Server[] = [];
const sockets = new Set<Socket>();

async function scripted(steps: Step[]): Promise<Scripted> {
  const hits: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    hits.push(`${req.method} ${req.url}`);
    const step = steps.shift() ?? 200;
    if (step === 'reset') {
      req.socket.destroy();
      return;
    }
    if (step === 'hang') return; // never answers: the client's headers timeout must fire
    if (step === 'hang-body') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"a":');
      return; // body never completes: the body timeout must fire
    }
    res.writeHead(step, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ step }));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

afterEach(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

const logger = createLogger({ level: 'silent' });
// Issue 8.17: a 300 ms timeout is only used where the server never answers (a hang is a timeout
// whatever the machine's speed); requests that get an answer have generous timeouts, so a loaded
// machine cannot turn a slow answer into a spurious UND_ERR_HEADERS_TIMEOUT.
const http = { connectTimeoutMs: 10_000, headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000, connections: 2 };
const hangs = { ...http, headersTimeoutMs: 300, bodyTimeoutMs: 300 };

function client(url: string, settings = http) {
  return createHttpClient({
    target: 'source',
    baseUrl: url,
    http: settings,
    logger,
    retry: { retries: 2, minDelayMs: 1, maxDelayMs: 5 },
  });
}

describe('http client against a scripted server', () => {
  it('500 then 200: a GET succeeds on the second try', async () => {
    const s = await scripted([500, 200]);
    const c = client(s.url);
    const res = await c.request({ method: 'GET', path: '/user', query: { firstResult: 0 } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ step: 200 });
    expect(s.hits).toEqual(['GET /user?firstResult=0', 'GET /user?firstResult=0']);
    expect(res.records.map((r) => r.status)).toEqual([500, 200]);
    await c.close();
  });

  it('a connection reset is retried for GET', async () => {
    const s = await scripted(['reset', 200]);
    const c = client(s.url);
    const res = await c.request({ method: 'GET', path: '/user/count' });
    expect(res.status).toBe(200);
    expect(res.records[0]!.errorCode).toMatch(/^(UND_ERR_SOCKET|ECONNRESET)$/);
    expect(res.records[1]!.status).toBe(200);
    await c.close();
  });

  it('a reset on PATCH is not retried and surfaces as transient', async () => {
    const s = await scripted(['reset', 200]);
    const c = client(s.url);
    const err = await c
      .request({ method: 'PATCH', path: '/p', body: { a: 1 }, userId: 'u1' })
      .catch((e) => e);
    expect(err).toBeInstanceOf(SyncError);
    expect(err.errorClass).toBe('transient');
    expect(s.hits).toHaveLength(1);
    await c.close();
  });

  it('a hang ends in a headers timeout, classified transient after the retries', async () => {
    const s = await scripted(['hang', 'hang', 'hang']);
    const c = client(s.url, hangs);
    const err = await c.request({ method: 'GET', path: '/slow' }).catch((e) => e);
    expect(err).toBeInstanceOf(SyncError);
    expect(err.errorClass).toBe('transient');
    expect(err.vendorCode).toBe('UND_ERR_HEADERS_TIMEOUT');
    expect(s.hits).toHaveLength(3);
    await c.close();
  });

  it('a body that stops mid-way ends in a body timeout', async () => {
    const s = await scripted(['hang-body']);
    const c = createHttpClient({ target: 'source', baseUrl: s.url, http: hangs, logger, retry: false });
    const err = await c.request({ method: 'GET', path: '/half' }).catch((e) => e);
    expect(err.errorClass).toBe('transient');
    expect(err.vendorCode).toBe('UND_ERR_BODY_TIMEOUT');
    await c.close();
  });

  it('connection refused is transient', async () => {
    const s = await scripted([]);
    await s.close();
    const c = createHttpClient({ target: 'source', baseUrl: s.url, http, logger, retry: false });
    const err = await c.request({ method: 'GET', path: '/x' }).catch((e) => e);
    expect(err.errorClass).toBe('transient');
    expect(err.vendorCode).toBe('ECONNREFUSED');
    await c.close();
  });

  it('reuses connections (keep-alive) within the connection bound', async () => {
    const s = await scripted([]);
    const seen = new Set<number>();
    const server = servers.at(-1)!;
    server.on('request', (req: IncomingMessage) => seen.add(req.socket.remotePort!));
    const c = client(s.url);
    await Promise.all(Array.from({ length: 20 }, () => c.request({ method: 'GET', path: '/k' })));
    for (let i = 0; i < 10; i++) await c.request({ method: 'GET', path: '/k' });
    expect(seen.size).toBeLessThanOrEqual(http.connections);
    await c.close();
  });

  it('an abort signal stops the request without classifying it', async () => {
    const s = await scripted(['hang']);
    const c = client(s.url);
    const ac = new AbortController();
    const p = c.request({ method: 'GET', path: '/x', signal: ac.signal });
    ac.abort();
    const err = await p.catch((e) => e);
    expect(err).not.toBeInstanceOf(SyncError);
    expect(s.hits.length).toBeLessThanOrEqual(1);
    await c.close();
  });
});
