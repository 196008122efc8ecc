import { INSPECT_PREFIX, InspectError } from '../kit/server.js';
import type { Route, SimResponse } from '../kit/types.js';
import { chooseShare, MUTABLE_FIELDS, type MutableField, mutateUsers } from './mutations.js';
import type { SourceVendor } from './source-vendor.js';
import type { StoredRecord } from './user-store.js';

const p = INSPECT_PREFIX;
const FIELDS = ['id', 'firstName', 'lastName', 'email'];

function validUser(input: unknown, at: string): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new InspectError(400, `${at} must be an object (send {"raw": [...]} to store anything as is)`);
  }
  const u = input as Record<string, unknown>;
  if (typeof u.id !== 'string' || u.id === '')
    throw new InspectError(400, `${at}.id must be a non-empty string`);
  for (const [k, v] of Object.entries(u)) {
    if (!FIELDS.includes(k)) throw new InspectError(400, `${at}.${k} is not a profile field`);
    if (v !== null && typeof v !== 'string')
      throw new InspectError(400, `${at}.${k} must be a string or null`);
  }
  // Stored with all four keys, a missing value null: Camunda never answers an absent key.
  return { id: u.id, firstName: u.firstName ?? null, lastName: u.lastName ?? null, email: u.email ?? null };
}

function share(body: Record<string, unknown>): number {
  const s = body.share;
  if (typeof s !== 'number' || !(s >= 0 && s <= 1))
    throw new InspectError(400, 'share must be a number from 0 to 1');
  return s;
}

function seedOf(body: Record<string, unknown>): number {
  const seed = body.seed ?? 1;
  if (!Number.isInteger(seed)) throw new InspectError(400, 'seed must be an integer');
  return seed as number;
}

function objectBody(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InspectError(400, 'the body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

const ok = (body: unknown, status = 200): SimResponse => ({ status, body });

/** The source's own inspection routes: read, add, change and remove users (see docs/sandbox.md). */
export function sourceInspectRoutes(vendor: SourceVendor): Route[] {
  const store = vendor.store;
  return [
    { method: 'GET', pattern: `${p}users`, handler: () => ok(store.all()) },
    {
      method: 'GET',
      pattern: `${p}users/:id`,
      handler: (req) => {
        const u = store.get(req.params.id!);
        if (!u) throw new InspectError(404, `no user ${req.params.id}`);
        return ok(u);
      },
    },
    {
      // A user, an array of users (validated; upserted), or {"raw": [...]} stored exactly as given.
      method: 'POST',
      pattern: `${p}users`,
      handler: (req) => {
        const body = req.body;
        if (typeof body === 'object' && body !== null && !Array.isArray(body) && 'raw' in body) {
          const raw = (body as { raw: unknown }).raw;
          if (!Array.isArray(raw)) throw new InspectError(400, 'raw must be an array');
          const records = raw.map(
            (r) => (typeof r === 'object' && r !== null ? r : { value: r }) as StoredRecord,
          );
          for (const r of records) store.put(r);
          return ok({ stored: records.length, ids: records.map((r) => r.id ?? null) }, 201);
        }
        const users = Array.isArray(body)
          ? body.map((u, i) => validUser(u, `users[${i}]`))
          : [validUser(body, 'user')];
        for (const u of users) store.put(u);
        return ok({ stored: users.length, ids: users.map((u) => u.id) }, 201);
      },
    },
    {
      method: 'PATCH',
      pattern: `${p}users/:id`,
      handler: (req) => {
        const u = store.patch(req.params.id!, objectBody(req.body));
        if (!u) throw new InspectError(404, `no user ${req.params.id}`);
        return ok(u);
      },
    },
    {
      method: 'DELETE',
      pattern: `${p}users/:id`,
      handler: (req) => {
        if (!store.delete(req.params.id!)) throw new InspectError(404, `no user ${req.params.id}`);
        return { status: 204 };
      },
    },
    {
      method: 'POST',
      pattern: `${p}users/mutate`,
      handler: (req) => {
        const body = objectBody(req.body);
        const fields = (body.fields ?? MUTABLE_FIELDS) as MutableField[];
        if (
          !Array.isArray(fields) ||
          fields.length === 0 ||
          !fields.every((f) => MUTABLE_FIELDS.includes(f))
        ) {
          throw new InspectError(400, `fields must be a non-empty array of ${MUTABLE_FIELDS.join(', ')}`);
        }
        return ok({ changed: mutateUsers(store, share(body), seedOf(body), fields) });
      },
    },
    {
      method: 'POST',
      pattern: `${p}users/remove`,
      handler: (req) => {
        const body = objectBody(req.body);
        let ids: string[];
        if (body.ids !== undefined) {
          if (!Array.isArray(body.ids) || !body.ids.every((x) => typeof x === 'string')) {
            throw new InspectError(400, 'ids must be an array of strings');
          }
          ids = body.ids.filter((id) => store.has(id));
        } else {
          ids = chooseShare(store.ids(), share(body), seedOf(body));
        }
        for (const id of ids) store.delete(id);
        return ok({ removed: ids });
      },
    },
    {
      // One-shot: {afterPage: n, remove?: [ids], add?: [users]} applied right after the n-th
      // GET /user list answer from now (n >= 1), before the next request is answered.
      method: 'POST',
      pattern: `${p}users/on-page`,
      handler: (req) => {
        const body = objectBody(req.body);
        const afterPage = body.afterPage;
        if (typeof afterPage !== 'number' || !Number.isInteger(afterPage) || afterPage < 1)
          throw new InspectError(400, 'afterPage must be a positive integer');
        const remove = body.remove ?? [];
        if (!Array.isArray(remove) || !remove.every((x) => typeof x === 'string'))
          throw new InspectError(400, 'remove must be an array of strings');
        const add = body.add ?? [];
        if (!Array.isArray(add)) throw new InspectError(400, 'add must be an array of users');
        const users = add.map((u, i) => validUser(u, `add[${i}]`));
        vendor.pageHooks.push({ at: vendor.pagesServed + afterPage, remove: remove as string[], add: users });
        return ok({ pending: vendor.pageHooks.length }, 201);
      },
    },
    { method: 'GET', pattern: `${p}page-hooks`, handler: () => ok(vendor.pageHooks) },
    {
      method: 'PUT',
      pattern: `${p}read-only`,
      handler: (req) => {
        if (typeof req.body !== 'boolean') throw new InspectError(400, 'the body must be true or false');
        vendor.readOnly = req.body;
        return ok(vendor.readOnly);
      },
    },
  ];
}
