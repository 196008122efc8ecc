import type { HttpConfig, SourceConfig } from '../../config/schema.js';
import { SyncError } from '../../core/errors.js';
import type { SourcePage, SourceRecord } from '../../core/types.js';
import { createHttpClient, type HttpResponse } from '../http.js';
import type { ConnectorDeps, SourceConnector } from '../types.js';
import { parseSourceRecord } from './record.js';

const DOT_ID_REASON = 'id: is "." or "..", which URLs cannot carry as a path segment';

/** Ids per `GET /user?idIn=` request. */
export const GET_USERS_BATCH = 100;

/**
 * Thrown by `scan()` when the overlap record of a page is not the last record of the page before: the
 * source's order moved under the scan (users removed or inserted in pages already read), so a user may
 * have been skipped. Retryable: the caller re-reads (jobs/scan.ts restarts the pass a bounded number of
 * times, then ends the scan incomplete, so no deletion is concluded from it).
 */
export class SourceOrderChangedError extends SyncError {
  constructor(
    readonly page: number,
    readonly firstResult: number,
  ) {
    super(
      'transient',
      `source: the user list moved during the scan (page ${page + 1}, firstResult=${firstResult} did not start on the last user of the page before: users were removed or added meanwhile)`,
      { target: 'source', vendorCode: 'order_changed' },
    );
  }
}

/** The list moved under a scan: a page's overlap changed (SourceOrderChangedError) or the counts disagree. */
export function isSourceOrderChanged(err: unknown): err is SyncError {
  return err instanceof SyncError && err.vendorCode === 'order_changed';
}

/** What a page's overlap record is compared by: its id, or the whole record when it has none. */
function overlapKey(raw: unknown): string {
  const id = typeof raw === 'object' && raw !== null ? (raw as { id?: unknown }).id : undefined;
  return typeof id === 'string' ? `id:${id}` : `raw:${JSON.stringify(raw)}`;
}

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
    opts: {
      pageSize?: number;
      signal?: AbortSignal;
      onPage?: (page: SourcePage) => void;
      prefetch?: number;
    } = {},
  ): AsyncGenerator<SourceRecord> {
    const pageSize = opts.pageSize ?? config.pageSize;
    if (!Number.isInteger(pageSize) || pageSize < 1)
      throw new RangeError(`pageSize must be a positive integer`);
    const fetchPage = (index: number) => {
      const overlap = index > 0 ? 1 : 0;
      const firstResult = index * pageSize - overlap;
      return client.request({
        method: 'GET',
        path: '/user',
        query: { firstResult, maxResults: pageSize + overlap, sortBy: 'userId', sortOrder: 'asc' },
        signal: opts.signal,
      });
    };
    // Issue 8.1: every page after the first starts one record early, on the last record of the page
    // before. Offset paging shifts when users are removed from (or inserted into) pages already read:
    // the overlap record then differs and the scan stops with SourceOrderChangedError instead of
    // silently skipping (or re-reading) users. Compared by id (the list is sorted by userId).
    let last: string | undefined;
    // Requests of the pages after the current one (opts.prefetch of them), oldest first.
    const ahead: Promise<HttpResponse>[] = [];
    const depth = Math.max(0, Math.floor(opts.prefetch ?? 0));
    for (let index = 0; ; index++) {
      opts.signal?.throwIfAborted();
      const overlap = index > 0 ? 1 : 0;
      const firstResult = index * pageSize - overlap;
      const maxResults = pageSize + overlap;
      const res = ok(await (ahead.shift() ?? fetchPage(index)), 'GET');
      const page = res.body;
      if (!Array.isArray(page)) throw malformed(res, 'a body that is not a JSON array');
      if (page.length > maxResults) throw malformed(res, `${page.length} users for maxResults=${maxResults}`);
      if (overlap) {
        const first = page.length ? overlapKey(page[0]) : undefined;
        if (first !== last) throw new SourceOrderChangedError(index, firstResult);
      }
      // Issue 11.4: the next pages are requested while this one is consumed (1 + prefetch pages held
      // at most), so the source's answer time overlaps the caller's work. A failure surfaces when its
      // page is read; a consumer that stops early (and aborts `signal`) leaves them unread, their
      // rejections handled here. A short page is the last: nothing is requested after it.
      if (page.length < maxResults) ahead.length = 0;
      else
        while (ahead.length < depth) {
          const p = fetchPage(index + 1 + ahead.length);
          p.catch(() => undefined);
          ahead.push(p);
        }
      opts.onPage?.({ index, firstResult, size: page.length - overlap });
      if (page.length > 0) last = overlapKey(page[page.length - 1]);
      for (let i = overlap; i < page.length; i++) {
        const record = parseSourceRecord(page[i]);
        page[i] = undefined; // let a consumed record go before the page ends
        yield record;
      }
      // A short (or empty) page is the last one: seed 002's API family has no total or next link.
      if (page.length < maxResults) return;
    }
  }

  /**
   * Several users at once: `GET /user?idIn=a,b,c` (vendor-facts.md), in batches of at most
   * GET_USERS_BATCH ids and about 4,000 characters of query; an id holding `,` cannot travel in
   * `idIn` and is read alone (`GET /user/{id}/profile`). Returns the records the source holds, by id;
   * an id absent from the map is one the source did not return. A 2xx that is not a JSON array, or
   * that holds a user not asked for, is a malformed answer (a proxy answering anything at all must
   * not pass for "these users are gone").
   */
  async function getUsers(ids: string[]): Promise<Map<string, SourceRecord>> {
    const found = new Map<string, SourceRecord>();
    const listed = ids.filter((id) => !id.includes(','));
    for (const id of ids) {
      if (!id.includes(',')) continue;
      const rec = await getUser(id);
      if (rec) found.set(id, rec);
    }
    let batch: string[] = [];
    let length = 0;
    const send = async () => {
      if (batch.length === 0) return;
      const asked = new Set(batch);
      const res = ok(
        await client.request({
          method: 'GET',
          path: '/user',
          query: { idIn: batch.join(','), firstResult: 0, maxResults: batch.length },
        }),
        'GET',
      );
      const page = res.body;
      if (!Array.isArray(page)) throw malformed(res, 'a body that is not a JSON array');
      for (const raw of page) {
        const rec = parseSourceRecord(raw);
        const id = rec.ok ? rec.user.id : rec.userId;
        if (id === undefined || !asked.has(id)) throw malformed(res, 'a user that idIn did not ask for');
        found.set(id, rec);
      }
      batch = [];
      length = 0;
    };
    for (const id of listed) {
      const size = encodeURIComponent(id).length + 3;
      if (batch.length >= GET_USERS_BATCH || (batch.length > 0 && length + size > 4000)) await send();
      batch.push(id);
      length += size;
    }
    await send();
    return found;
  }

  async function getUser(id: string): Promise<SourceRecord | null> {
    // Issue 8.9: `.` and `..` cannot travel as a path segment (URL parsers collapse them, even
    // encoded): `GET /user/../profile` would ask another resource. Refused without a request.
    if (id === '.' || id === '..') return { ok: false, userId: id, reason: DOT_ID_REASON };
    // vendor-facts.md: Camunda decodes `%2F` to `/` before routing, so a `/` in an id goes double-encoded.
    const path = `/user/${encodeURIComponent(id).replace(/%2F/g, '%252F')}/profile`;
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
    getUsers,
    close: () => client.close(),
  };
}
