import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as runActions from '../../jobs/run-actions.js';
import type { TappedRequest } from '../../src/sandbox/index.js';
import { type Harness, inspectPost, startHarness } from '../integration/engine/harness.js';
import { validateRequest as validatePatchBody } from '../unit/sandbox/prelude/openapi.js';

/**
 * Issue 10, contract: every Prelude request of full runs (1,000 users on the sandbox's default `usr`
 * ids: the first backfill with lookups by external_id and email and PRELUDE_CREATE_USERS=true, a run
 * after changes, a `--full` run), as the SIMULATOR received it (its tap, not our own records):
 * - the profile PATCH validates against seed 004's OpenAPI (prelude-openapi.yaml, the
 *   PatchUserProfileRequest schema of the operation itself) and addresses a `usr_` id;
 * - the endpoints beyond seed 004 follow prelude-users-api.md, with schemas written from that file
 *   below: batch_lookup (each list at most 100 entries, not both empty, strings), create user
 *   (identifiers of type email_address with a value, external_id of at most 128 characters, a
 *   string-valued profile), get user (no body, a `usr_` id).
 */

const ajv = new Ajv2020({ strict: true, allErrors: true });
const EXTERNAL_ID = { type: 'string', minLength: 1, maxLength: 128 };

/** prelude-users-api.md "batch lookup": `{"external_ids": [...], "emails": [...]}`, at least one list, each <= 100. */
const validateBatchLookup = ajv.compile({
  type: 'object',
  additionalProperties: false,
  properties: {
    external_ids: { type: 'array', maxItems: 100, items: EXTERNAL_ID },
    emails: { type: 'array', maxItems: 100, items: { type: 'string', pattern: '^[^@\\s]+@[^@\\s]+$' } },
  },
  anyOf: [
    { required: ['external_ids'], properties: { external_ids: { type: 'array', minItems: 1 } } },
    { required: ['emails'], properties: { emails: { type: 'array', minItems: 1 } } },
  ],
});

/** prelude-users-api.md "create user": identifiers required; profile; external_id (our id). */
const validateCreate = ajv.compile({
  type: 'object',
  additionalProperties: false,
  required: ['identifiers'],
  properties: {
    identifiers: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['type', 'value'],
        properties: {
          // profile-sync logs users in by email only: a phone number is never sent.
          type: { const: 'email_address' },
          value: { type: 'string', pattern: '^[^@\\s]+@[^@\\s]+$' },
        },
      },
    },
    profile: { type: 'object', additionalProperties: { type: 'string' } },
    external_id: EXTERNAL_ID,
  },
});

const APP = '/v2/session/apps/app_sandbox/users';
const USR = 'usr_[0-9a-z]+';

let h: Harness;
const seen: TappedRequest[] = [];

beforeAll(async () => {
  h = await startHarness({
    label: 'contract-prelude',
    sandbox: { users: 1000 },
    env: { PRELUDE_LINK_BY: 'external_id,email', PRELUDE_CREATE_USERS: 'true' },
  });
  h.sandbox.sims.prelude.tap((r) => seen.push(r));
}, 60_000);
afterAll(async () => {
  await h?.close();
});

describe('prelude: every request of full runs, as the simulator received it', () => {
  it('validates against prelude-openapi.yaml (PATCH) and prelude-users-api.md (lookup, create, get)', async () => {
    const engine = await h.engine({ only: ['prelude'] });
    await engine.startWorkers({ concurrency: 8 });
    const run = async (opts: { full?: boolean } = {}) =>
      runActions.waitForRun(
        engine,
        await runActions.startRun(engine, { kind: 'backfill', targets: ['prelude'], ...opts }),
        { pollMs: 100 },
      );
    const first = await run();
    expect(first.status).toBe('completed');
    // Changes (names and emails, some cleared) for PATCHes that update and clear keys.
    await inspectPost(h.sandbox.urls.source, 'users/mutate', { share: 0.1, seed: 5 });
    expect((await run()).status).toBe('completed');
    expect((await run({ full: true })).status).toBe('completed');

    const bad: string[] = [];
    const count = { lookup: 0, create: 0, patch: 0, get: 0 };
    const check = (ok: boolean, what: string, r: TappedRequest, errors: unknown) => {
      if (!ok)
        bad.push(`${what} ${r.method} ${r.rawPath}: ${JSON.stringify(errors)} ${JSON.stringify(r.body)}`);
    };
    for (const r of seen) {
      if (r.method === 'POST' && r.rawPath === `${APP}/batch_lookup`) {
        count.lookup++;
        check(validateBatchLookup(r.body), 'batch_lookup', r, validateBatchLookup.errors);
      } else if (r.method === 'POST' && r.rawPath === APP) {
        count.create++;
        check(validateCreate(r.body), 'create', r, validateCreate.errors);
      } else if (r.method === 'PATCH' && new RegExp(`^${APP}/${USR}/profile$`).test(r.rawPath)) {
        count.patch++;
        check(validatePatchBody(r.body), 'PATCH', r, validatePatchBody.errors);
      } else if (r.method === 'GET' && new RegExp(`^${APP}/${USR}$`).test(r.rawPath)) {
        count.get++;
        check(r.body === undefined, 'GET with a body', r, null);
      } else {
        bad.push(`a request outside the contract: ${r.method} ${r.rawPath}`);
      }
    }
    expect(bad).toEqual([]);
    // Every kind was really exercised (a validation of nothing proves nothing).
    expect(count.lookup).toBeGreaterThanOrEqual(10);
    expect(count.create).toBeGreaterThan(0);
    expect(count.patch).toBeGreaterThan(500);
    expect(count.get).toBeGreaterThan(500);
    // The answers the client acted on were the documented ones.
    expect(new Set(seen.map((r) => r.status))).toEqual(new Set([200, 201, 204]));
    console.info(`prelude contract: ${seen.length} requests checked (${JSON.stringify(count)})`);
  }, 240_000);

  it('the schemas refuse what prelude-users-api.md forbids', () => {
    const ids = (n: number) => Array.from({ length: n }, (_, i) => `u${i}`);
    expect(validateBatchLookup({ external_ids: ids(100) })).toBe(true);
    expect(validateBatchLookup({ external_ids: ids(101) })).toBe(false);
    expect(validateBatchLookup({ emails: ids(3).map((i) => `${i}@x.org`), external_ids: [] })).toBe(true);
    expect(validateBatchLookup({ external_ids: [], emails: [] })).toBe(false);
    expect(validateBatchLookup({})).toBe(false);
    expect(validateBatchLookup({ external_ids: ['x'.repeat(129)] })).toBe(false);
    const ok = { identifiers: [{ type: 'email_address', value: 'a@b.org' }], external_id: 'u1', profile: {} };
    expect(validateCreate(ok)).toBe(true);
    expect(validateCreate({ ...ok, identifiers: [] })).toBe(false);
    expect(validateCreate({ ...ok, identifiers: [{ type: 'email', value: 'a@b.org' }] })).toBe(false);
    expect(validateCreate({ ...ok, profile: { age: 3 } })).toBe(false);
    expect(validatePatchBody({ profile: { first_name: 'A' } })).toBe(true);
    expect(validatePatchBody({ first_name: 'A' })).toBe(false);
  });
});
