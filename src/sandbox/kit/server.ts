import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { BODY_FAULT_DEFAULT, FaultInjector, validateFaultRules } from './faults.js';
import { RequestLog } from './request-log.js';
import { type RouteMatch, Router } from './router.js';
import { TokenBuckets } from './token-bucket.js';
import {
  INVALID_JSON,
  type RateLimit,
  type Route,
  type Sim,
  type SimOptions,
  type SimRequest,
  type SimResponse,
  type TappedRequest,
  type Vendor,
} from './types.js';

/** Every simulator's inspection API lives under this prefix: unauthenticated, never limited or faulted. */
export const INSPECT_PREFIX = '/__sandbox/';

/** Thrown by an inspection handler to answer `status` with `{"error": message}`. */
export class InspectError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'InspectError';
  }
}

const DEFAULT_MAX_BODY = 16 * 1024 * 1024;

/** Starts one simulator on its own port. Resolves once it listens. */
export async function startSim(vendor: Vendor, options: SimOptions = {}): Promise<Sim> {
  const host = options.host ?? '127.0.0.1';
  const now = options.now ?? Date.now;
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const initialFaults = validateFaultRules(options.faults ?? []);
  const initialLimit = options.rateLimit ?? null;
  const faults = new FaultInjector(initialFaults, options.faultSeed ?? 1);
  const log = new RequestLog(options.logCapacity ?? 200_000);
  let limit: RateLimit | null = initialLimit;
  let buckets: TokenBuckets | null = limit ? new TokenBuckets(limit, now) : null;

  const router = new Router(vendor.routes);
  const taps = new Set<(req: TappedRequest) => void>();
  let url = '';
  let port = 0;

  const sim: Sim = {
    vendor,
    get url() {
      return url;
    },
    get port() {
      return port;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Keep-alive sockets and hung requests would hold close() open forever.
        server.closeAllConnections();
      }),
    counters: () => log.counters(),
    resetCounters: () => log.clear(),
    requests: (since) => log.since(since),
    faults: () => faults.list(),
    setFaults: (rules) => faults.set(rules),
    rateLimit: () => (limit ? { ...limit } : null),
    setRateLimit: (next) => {
      buckets = next ? new TokenBuckets(next, now) : null;
      limit = next ? { ...next } : null;
    },
    tap: (listener) => {
      taps.add(listener);
      return () => taps.delete(listener);
    },
    reset: () => {
      vendor.reset?.();
      log.clear();
      faults.set(initialFaults);
      sim.setRateLimit(initialLimit);
    },
  };

  const inspector = new Router([...commonInspectRoutes(sim), ...(vendor.inspect ?? [])]);

  /** Sends a response; the hot path, so no spreading and one stringify. */
  function send(res: ServerResponse, r: SimResponse): void {
    const headers: Record<string, string | number> = r.headers ? Object.assign({}, r.headers) : {};
    if (r.body === undefined) {
      res.writeHead(r.status, headers);
      res.end();
      return;
    }
    let payload: string | Buffer;
    if (typeof r.body === 'string' || Buffer.isBuffer(r.body)) {
      payload = r.body;
      if (!hasHeader(headers, 'content-type')) headers['content-type'] = 'text/plain; charset=utf-8';
    } else {
      payload = JSON.stringify(r.body);
      if (!hasHeader(headers, 'content-type')) headers['content-type'] = 'application/json';
    }
    headers['content-length'] = Buffer.byteLength(payload);
    res.writeHead(r.status, headers);
    res.end(payload);
  }

  async function serve(
    req: IncomingMessage,
    res: ServerResponse,
    t: number,
    method: string,
    rawPath: string,
    query: URLSearchParams,
    rawBody: Buffer,
    tooLarge: boolean,
  ): Promise<void> {
    if (rawPath.startsWith(INSPECT_PREFIX)) {
      send(res, await inspect(method, rawPath, query, req, rawBody));
      return;
    }
    const m: RouteMatch = vendor.decodesSlashBeforeRouting
      ? slashDecoded(router.match(method, rawPath.replace(/%2F/gi, '/')))
      : router.match(method, rawPath);
    if (m.kind !== 'route') {
      const r =
        m.kind === 'method-not-allowed'
          ? withHeader(
              vendor.errorResponse(405, `${method} is not allowed here`),
              'allow',
              m.allow.join(', '),
            )
          : m.kind === 'bad-encoding'
            ? vendor.errorResponse(400, 'malformed percent-encoding in the path')
            : vendor.errorResponse(404, `no route for ${method} ${rawPath}`);
      log.record(t, method, 'unmatched', r.status, 'anonymous');
      send(res, r);
      return;
    }
    const name = m.name;
    if (tooLarge) {
      log.record(t, method, name, 413, 'anonymous');
      send(res, vendor.errorResponse(413, `request body larger than ${maxBody} bytes`));
      return;
    }
    const partial = {
      method,
      rawPath,
      params: m.params,
      query,
      headers: req.headers,
      rawBody,
      body: parseBody(rawBody),
    };
    const auth = await vendor.authenticate(partial);
    if (!('credential' in auth)) {
      log.record(t, method, name, auth.status, 'anonymous');
      send(res, auth);
      return;
    }
    const credential = auth.credential;
    if (buckets) {
      const took = buckets.take(credential);
      if (!took.ok) {
        const r = vendor.tooManyRequests(took.retryAfterSeconds, took.limit, took.remaining);
        log.record(t, method, name, r.status, credential);
        send(res, r);
        return;
      }
    }
    const decision = faults.decide(method, name, m.route.pattern, rawPath, query);
    if (decision.latencyMs > 0) await sleep(decision.latencyMs);
    const fault = decision.terminal;
    if (fault) {
      if (fault.kind === 'status') {
        const status = fault.status ?? 500;
        log.record(t, method, name, status, credential);
        send(res, vendor.errorResponse(status, `injected fault: ${status}`));
      } else if (fault.kind === 'body') {
        // The vendor's status line (default 200) with a body that is not the vendor's JSON.
        const status = fault.status ?? 200;
        log.record(t, method, name, status, credential);
        send(res, {
          status,
          body: fault.body ?? BODY_FAULT_DEFAULT,
          headers: { 'content-type': fault.contentType ?? 'text/html; charset=utf-8' },
        });
      } else {
        // reset: the socket dies without an answer; hang: nothing is ever sent (closed with the server).
        log.record(t, method, name, 0, credential);
        if (fault.kind === 'reset') req.socket.destroy();
      }
      return;
    }
    const full = partial as SimRequest;
    full.credential = credential;
    let r: SimResponse;
    try {
      r = await m.route.handler(full);
    } catch (err) {
      r = vendor.errorResponse(500, err instanceof Error ? err.message : String(err));
    }
    log.record(t, method, name, r.status, credential);
    for (const listener of taps)
      listener({ method, route: name, rawPath, body: full.body, status: r.status });
    send(res, r);
  }

  async function inspect(
    method: string,
    rawPath: string,
    query: URLSearchParams,
    req: IncomingMessage,
    rawBody: Buffer,
  ): Promise<SimResponse> {
    const m = inspector.match(method, rawPath);
    if (m.kind === 'method-not-allowed') {
      return {
        status: 405,
        body: { error: `${method} is not allowed here` },
        headers: { allow: m.allow.join(', ') },
      };
    }
    if (m.kind !== 'route')
      return {
        status: m.kind === 'none' ? 404 : 400,
        body: { error: `no inspection route ${method} ${rawPath}` },
      };
    const body = parseBody(rawBody);
    if (body === INVALID_JSON) return { status: 400, body: { error: 'the body is not valid JSON' } };
    try {
      return await m.route.handler({
        method,
        rawPath,
        params: m.params,
        query,
        headers: req.headers,
        rawBody,
        body,
        credential: 'inspector',
      });
    } catch (err) {
      if (err instanceof InspectError) return { status: err.status, body: { error: err.message } };
      if (err instanceof TypeError || err instanceof RangeError)
        return { status: 400, body: { error: err.message } };
      return { status: 500, body: { error: err instanceof Error ? err.message : String(err) } };
    }
  }

  const server = createServer((req, res) => {
    const t = now();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q < 0 ? url : url.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    const method = req.method ?? 'GET';
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBody) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => {
      const rawBody = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      serve(req, res, t, method, rawPath, query, rawBody, tooLarge).catch((err: unknown) => {
        if (!res.headersSent) {
          send(res, vendor.errorResponse(500, err instanceof Error ? err.message : String(err)));
        }
      });
    });
  });
  // Longer than any client's keep-alive (undici: 4 s), so a client never reuses a socket we are closing.
  server.keepAliveTimeout = 65_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  url = simUrl(host, port);
  return sim;
}

/**
 * The URL a client on this machine uses. A wildcard bind (`0.0.0.0`, `::`, as in a container whose
 * port other containers reach) is no address to connect to: the URL names loopback instead, so the
 * printed `export` lines work as they are (and pass profile-sync's plain-http-on-loopback-only rule).
 */
export function simUrl(host: string, port: number): string {
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' || host === '[::]' ? '::1' : host;
  return `http://${h.includes(':') ? `[${h.replace(/^\[|\]$/g, '')}]` : h}:${port}`;
}

function parseBody(raw: Buffer): unknown {
  if (raw.length === 0) return undefined;
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    return INVALID_JSON;
  }
}

function hasHeader(headers: Record<string, unknown>, name: string): boolean {
  for (const k in headers) if (k.toLowerCase() === name) return true;
  return false;
}

function withHeader(r: SimResponse, name: string, value: string): SimResponse {
  return { ...r, headers: { ...r.headers, [name]: value } };
}

function json(status: number, body?: unknown): SimResponse {
  return body === undefined ? { status } : { status, body };
}

/** The inspection routes every simulator has (see docs/sandbox.md). */
function commonInspectRoutes(sim: Sim): Route[] {
  const p = INSPECT_PREFIX;
  return [
    { method: 'GET', pattern: `${p}state`, handler: () => json(200, sim.vendor.state()) },
    { method: 'GET', pattern: `${p}counters`, handler: () => json(200, sim.counters()) },
    {
      method: 'POST',
      pattern: `${p}counters/reset`,
      handler: () => {
        sim.resetCounters();
        return json(204);
      },
    },
    {
      method: 'GET',
      pattern: `${p}requests`,
      handler: (req) => {
        const since = Number(req.query.get('since') ?? '0');
        if (!Number.isFinite(since)) throw new InspectError(400, 'since must be epoch milliseconds');
        return json(200, sim.requests(since));
      },
    },
    { method: 'GET', pattern: `${p}faults`, handler: () => json(200, sim.faults()) },
    {
      method: 'PUT',
      pattern: `${p}faults`,
      handler: (req) => {
        sim.setFaults(validateFaultRules(req.body));
        return json(200, sim.faults());
      },
    },
    {
      method: 'DELETE',
      pattern: `${p}faults`,
      handler: () => {
        sim.setFaults([]);
        return json(204);
      },
    },
    { method: 'GET', pattern: `${p}rate-limit`, handler: () => json(200, sim.rateLimit()) },
    {
      method: 'PUT',
      pattern: `${p}rate-limit`,
      handler: (req) => {
        sim.setRateLimit(validateRateLimit(req.body));
        return json(200, sim.rateLimit());
      },
    },
    {
      method: 'POST',
      pattern: `${p}reset`,
      handler: () => {
        sim.reset();
        return json(204);
      },
    },
  ];
}

/** `{perMinute > 0, burst >= 1}` or null (unlimited); throws a TypeError naming the field otherwise. */
export function validateRateLimit(input: unknown): RateLimit | null {
  if (input === null) return null;
  if (typeof input !== 'object' || input === undefined) {
    throw new TypeError('rate limit must be {perMinute, burst} or null');
  }
  const { perMinute, burst } = input as Partial<RateLimit>;
  if (typeof perMinute !== 'number' || !(perMinute > 0))
    throw new TypeError('perMinute must be a number > 0');
  if (typeof burst !== 'number' || !Number.isInteger(burst) || burst < 1) {
    throw new TypeError('burst must be an integer >= 1');
  }
  return { perMinute, burst };
}

/** After routing on a path whose `%2F` became `/`, a parameter's `%2F` (sent as `%252F`) is a slash. */
function slashDecoded(m: RouteMatch): RouteMatch {
  if (m.kind !== 'route') return m;
  const params: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.params)) params[k] = v.replace(/%2F/gi, '/');
  return { ...m, params };
}
