import type { PreludeConfig } from '../../config/schema.js';
import { SyncError } from '../../core/errors.js';
import type { FieldMap, PlannedRequest, RequestRecord, RequestScope, SourceUser } from '../../core/types.js';
import type { HttpClient } from '../http.js';
import { isObject, RequestLog, unreadableRead } from '../target-common.js';
import type { FoundLinkResult, LinkLookupResult, TargetLinker } from '../types.js';
import { appFailure } from './app-errors.js';

/** `batch_lookup` takes at most 100 entries per list (prelude-users-api.md): one request per 100 users. */
export const LOOKUP_BATCH = 100;

export type LinkBy = PreludeConfig['linkBy'];

export interface BatchLookupBody {
  external_ids?: string[];
  emails?: string[];
}

/** The address a user is looked up by: trimmed, lowercased (Prelude's email identifiers are logins). */
export function lookupEmail(user: SourceUser): string | undefined {
  const e = typeof user.email === 'string' ? user.email.trim().toLowerCase() : '';
  return e.includes('@') ? e : undefined;
}

const byExternalId = (linkBy: LinkBy) => linkBy === 'external_id' || linkBy === 'external_id,email';
const byEmail = (linkBy: LinkBy) => linkBy === 'email' || linkBy === 'external_id,email';

/**
 * The body for one batch of at most 100 users. With `external_id,email` both lists go in ONE request
 * (the API takes both): still one request per 100 users. Undefined when there is nothing to ask.
 */
export function lookupBody(linkBy: LinkBy, users: readonly SourceUser[]): BatchLookupBody | undefined {
  if (users.length > LOOKUP_BATCH) throw new Error(`batch_lookup: ${users.length} users, at most 100`);
  const body: BatchLookupBody = {};
  if (byExternalId(linkBy)) body.external_ids = users.map((u) => u.id);
  if (byEmail(linkBy)) {
    const emails = [...new Set(users.map(lookupEmail).filter((e): e is string => e !== undefined))];
    if (emails.length) body.emails = emails;
  }
  return body.external_ids?.length || body.emails?.length ? body : undefined;
}

interface FoundUser {
  id: string;
  externalId?: string;
  emails: string[];
}

export function parseUsers(body: unknown): FoundUser[] | undefined {
  if (!isObject(body) || !Array.isArray(body.users)) return undefined;
  const out: FoundUser[] = [];
  for (const u of body.users) {
    if (!isObject(u) || typeof u.id !== 'string' || u.id === '') return undefined;
    const ids = Array.isArray(u.identifiers) ? u.identifiers : [];
    out.push({
      id: u.id,
      ...(typeof u.external_id === 'string' && u.external_id !== '' ? { externalId: u.external_id } : {}),
      emails: ids
        .map((i) => (isObject(i) && typeof i.value === 'string' ? i.value.trim().toLowerCase() : ''))
        .filter((v) => v.includes('@')),
    });
  }
  return out;
}

/**
 * Which source user each answered Prelude user is. By external_id: exact, and only when exactly one
 * Prelude user carries it. By email (after external_id): only a Prelude user with no external_id or
 * ours, only when the address names one Prelude user and one source user of the batch, and never a
 * Prelude user already linked by external_id: a wrong link would write one person's profile to another.
 */
export function matchLookup(
  linkBy: LinkBy,
  users: readonly SourceUser[],
  answer: FoundUser[],
): FoundLinkResult[] {
  const found = new Map<string, FoundLinkResult>();
  const taken = new Set<string>();
  if (byExternalId(linkBy)) {
    const byExt = new Map<string, FoundUser[]>();
    for (const p of answer)
      if (p.externalId) byExt.set(p.externalId, [...(byExt.get(p.externalId) ?? []), p]);
    for (const u of users) {
      const hits = byExt.get(u.id) ?? [];
      if (hits.length !== 1) continue;
      found.set(u.id, { sourceId: u.id, preludeUserId: hits[0]!.id, how: 'external_id' });
      taken.add(hits[0]!.id);
    }
  }
  if (byEmail(linkBy)) {
    const prelude = new Map<string, FoundUser[]>();
    for (const p of answer) for (const e of new Set(p.emails)) prelude.set(e, [...(prelude.get(e) ?? []), p]);
    const sources = new Map<string, number>();
    for (const u of users) {
      const e = lookupEmail(u);
      if (e) sources.set(e, (sources.get(e) ?? 0) + 1);
    }
    for (const u of users) {
      const e = lookupEmail(u);
      if (found.has(u.id) || !e || sources.get(e) !== 1) continue;
      const hits = prelude.get(e) ?? [];
      const p = hits[0];
      if (hits.length !== 1 || !p || taken.has(p.id)) continue;
      if (p.externalId !== undefined && p.externalId !== u.id) continue;
      found.set(u.id, { sourceId: u.id, preludeUserId: p.id, how: 'email' });
      taken.add(p.id);
    }
  }
  return [...found.values()];
}

/** Seed 004's error shapes for the users endpoints: non-2xx is classified like the PATCH's. */
export function createPreludeLinker(
  config: PreludeConfig,
  client: HttpClient,
  usersPath: string,
): TargetLinker {
  const linkBy = config.linkBy;
  const looksUp = byExternalId(linkBy) || byEmail(linkBy);

  async function lookup(users: readonly SourceUser[], scope?: RequestScope): Promise<LinkLookupResult> {
    const log = new RequestLog(scope);
    const found: FoundLinkResult[] = [];
    let sent = 0;
    if (!looksUp) return { found, requests: [], lookups: 0 };
    for (let i = 0; i < users.length; i += LOOKUP_BATCH) {
      const batch = users.slice(i, i + LOOKUP_BATCH);
      const body = lookupBody(linkBy, batch);
      if (!body) continue;
      // A read: safe to send again after a crash, allowed in a dry run.
      const res = log.add(
        await client.request({
          method: 'POST',
          path: `${usersPath}/batch_lookup`,
          body,
          readOnly: true,
          scope,
        }),
      );
      sent++;
      if (res.status !== 200)
        throw appFailure(config.appId, 'POST', res, undefined) ?? client.fail({ method: 'POST' }, res);
      const answer = parseUsers(res.body);
      if (!answer) throw unreadableRead('prelude', res, undefined, '{"users": [...]}');
      found.push(...matchLookup(linkBy, batch, answer));
    }
    return { found, requests: log.records, lookups: sent };
  }

  function planLookup(users: readonly SourceUser[]): PlannedRequest[] {
    const body = looksUp ? lookupBody(linkBy, users.slice(0, LOOKUP_BATCH)) : undefined;
    if (!body) return [];
    return [
      {
        method: 'POST',
        path: `${usersPath}/batch_lookup`,
        body,
        note: `find the Prelude user (PRELUDE_LINK_BY=${linkBy}; one request per 100 users)`,
      },
    ];
  }

  function createBody(user: SourceUser, fields: FieldMap) {
    const email = lookupEmail(user);
    if (!email) return undefined;
    const profile: Record<string, string> = {};
    for (const [k, v] of Object.entries(fields)) profile[k] = String(v);
    return { identifiers: [{ type: 'email_address', value: email }], external_id: user.id, profile };
  }

  async function create(
    user: SourceUser,
    fields: FieldMap,
    scope?: RequestScope,
  ): Promise<{ preludeUserId: string | undefined; requests: RequestRecord[] }> {
    const body = createBody(user, fields);
    // No email: no identifier to log in with, Prelude requires one; the user stays unlinked.
    if (!body) return { preludeUserId: undefined, requests: [] };
    const log = new RequestLog();
    const res = log.add(
      await client.request({ method: 'POST', path: usersPath, body, userId: user.id, scope }),
    );
    // 409: the address (or external_id) already belongs to a Prelude user that the lookup did not link
    // (known only by email, under PRELUDE_LINK_BY=external_id; or another user's). Never a second login
    // for the same person: the user stays unlinked (PRELUDE_LINK_BY=external_id,email links such users).
    if (res.status === 409) return { preludeUserId: undefined, requests: log.records };
    if (res.status !== 201 && res.status !== 200)
      throw (
        appFailure(config.appId, 'POST', res, user.id) ??
        client.fail({ method: 'POST', userId: user.id }, res)
      );
    const id = isObject(res.body) && typeof res.body.id === 'string' ? res.body.id : '';
    if (!id) {
      throw new SyncError(
        'permanent',
        `prelude: POST ${res.path} (user ${user.id}) answered without a user id`,
        {
          target: 'prelude',
          userId: user.id,
          status: res.status,
          requestId: res.requestId,
        },
      );
    }
    return { preludeUserId: id, requests: log.records };
  }

  function planCreate(user: SourceUser, fields: FieldMap): PlannedRequest[] {
    const body = config.createUsers ? createBody(user, fields) : undefined;
    return body
      ? [
          {
            method: 'POST',
            path: usersPath,
            body,
            note: 'create the Prelude user (PRELUDE_CREATE_USERS=true)',
          },
        ]
      : [];
  }

  return { linkBy, looksUp, createUsers: config.createUsers, lookup, planLookup, create, planCreate };
}
