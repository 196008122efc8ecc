import type { HttpConfig, SourceConfig } from '../../config/schema.js';
import { SyncError } from '../errors.js';
import { createHttpClient, type HttpResponse } from '../http.js';
import type { ConnectorDeps, SourceConnector, SourcePage, SourceRecord } from '../types.js';
import { parseSourceRecord } from './record.js';

export interface SourceConnectorOptions {
  /** URL, credentials and page size (`SOURCE_*`). */
  config: SourceConfig;
  http: HttpConfig;
}

/** `Authorization` for the identity service: bearer (SOURCE_TOKEN) or basic (SOURCE_USERNAME/PASSWORD). */
export function sourceAuthHeader(config: SourceConfig): Record<string, string> {
  if (config.token) return { authorization: `Bearer ${config.token}` };
  if (config.username !== undefined && config.password !== undefined) {
    const basic = Buffer.from(`${config.username}:${config.password}`, 'utf8').toString('base64');
    return { authorization: `Basic ${basic}` };
  }
  return {};
}

/**
 * The identity service (seed 002 and its API family): users are read, never written.
 * `scan()` pages `GET /user` sorted by userId ascending: without a sort the order of an offset-paged
 * list is not stable between requests, and users would be skipped or read twice. Memory stays flat by
 * construction: the next page is requested only after every record of the current one was consumed,
 * so the iterator never holds more than one page.
 */
export function createSourceConnector(options: SourceConnectorOptions, deps: ConnectorDeps): SourceConnector {
  const { config } = options;
  const auth = sourceAuthHeader(config);
  const client = createHttpClient({
    target: 'source',
    baseUrl: config.url,
    http: options.http,
    dispatcher: deps.dispatcher,
    logger: deps.logger,
    throttle: deps.throttle,
    headers: () => auth,
  });

  function ok(res: HttpResponse, method: 'GET', userId?: string): HttpResponse {
    if (res.status >= 200 && res.status < 300) return res;
    throw client.fail({ method, userId }, res);
  }

  function malformed(res: HttpResponse, what: string): SyncError {
    // A 2xx whose body is not what seed 002's API returns: retrying the same request will not fix it.
    return new SyncError('permanent', `source: GET ${res.path} answered ${res.status} with ${what}`, {
      target: 'source',
      status: res.status,
      vendorCode: 'malformed_response',
      requestId: res.requestId,
    });
  }

  async function count(): Promise<number> {
    const res = ok(await client.request({ method: 'GET', path: '/user/count' }), 'GET');
    const n = (res.body as { count?: unknown } | undefined)?.count;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw malformed(res, 'no integer count');
    return n;
  }

  async function* scan(
    opts: { pageSize?: number; signal?: AbortSignal; onPage?: (page: SourcePage) => void } = {},
  ): AsyncGenerator<SourceRecord> {
    const pageSize = opts.pageSize ?? config.pageSize;
    if (!Number.isInteger(pageSize) || pageSize < 1)
      throw new RangeError(`pageSize must be a positive integer`);
    for (let index = 0; ; index++) {
      opts.signal?.throwIfAborted();
      const firstResult = index * pageSize;
      const res = ok(
        await client.request({
          method: 'GET',
          path: '/user',
          query: { firstResult, maxResults: pageSize, sortBy: 'userId', sortOrder: 'asc' },
          signal: opts.signal,
        }),
        'GET',
      );
      const page = res.body;
      if (!Array.isArray(page)) throw malformed(res, 'a body that is not a JSON array');
      if (page.length > pageSize) throw malformed(res, `${page.length} users for maxResults=${pageSize}`);
      opts.onPage?.({ index, firstResult, size: page.length });
      for (let i = 0; i < page.length; i++) {
        const record = parseSourceRecord(page[i]);
        page[i] = undefined; // let a consumed record go before the page ends
        yield record;
      }
      // A short (or empty) page is the last one: seed 002's API family has no total or next link.
      if (page.length < pageSize) return;
    }
  }

  async function getUser(id: string): Promise<SourceRecord | null> {
    const path = `/user/${encodeURIComponent(id)}/profile`;
    const res = await client.request({ method: 'GET', path, userId: id });
    if (res.status === 404) return null;
    ok(res, 'GET', id);
    if (res.body === undefined) throw malformed(res, 'no JSON body');
    return parseSourceRecord(res.body);
  }

  return {
    async check() {
      await count();
    },
    count,
    scan,
    getUser,
    close: () => client.close(),
  };
}
