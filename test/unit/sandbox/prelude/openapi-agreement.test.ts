import { describe, expect, it } from 'vitest';
import { INVALID_JSON } from '../../../../src/sandbox/kit/index.js';
import { PRELUDE_ERRORS, preludeError } from '../../../../src/sandbox/prelude/errors.js';
import { checkPatchRequest } from '../../../../src/sandbox/prelude/patch-request.js';
import {
  componentCode,
  documentedErrorStatuses,
  validateComponent,
  validateRequest,
  validateResponse,
} from './openapi.js';

describe('Prelude errors agree with prelude-openapi.yaml', () => {
  const components = {
    invalid_request: 'InvalidRequestError',
    reserved_profile_key: 'ReservedProfileKeyError',
    session_disabled: 'SessionDisabledError',
    app_not_found: 'AppNotFoundError',
    user_not_found: 'UserNotFoundError',
  } as const;

  it('the OpenAPI documents bodies for 400, 403 and 404', () => {
    expect(documentedErrorStatuses.sort()).toEqual(['400', '403', '404']);
  });

  for (const [code, component] of Object.entries(components)) {
    it(`${code}: its component's schema, its status's oneOf, exactly {code, status, message}`, () => {
      const { status, body } = preludeError(code as keyof typeof components);
      expect(componentCode(component)).toBe(code);
      expect(validateComponent(component)(body), JSON.stringify(validateComponent(component).errors)).toBe(
        true,
      );
      const v = validateResponse(status);
      expect(v(body), JSON.stringify(v.errors)).toBe(true);
      expect(Object.keys(body).sort()).toEqual(['code', 'message', 'status']);
    });
  }

  it('an error body with a wrong status value would fail the check (the check can fail)', () => {
    expect(validateResponse(404)({ code: 'user_not_found', status: 'bad_request', message: 'x' })).toBe(
      false,
    );
    expect(validateResponse(400)({ code: 'session_disabled', status: 'forbidden', message: 'x' })).toBe(
      false,
    );
  });

  it('undocumented statuses keep the same {code, status, message} shape', () => {
    for (const code of ['unauthorized', 'too_many_requests', 'internal_error'] as const) {
      const { body } = preludeError(code);
      expect(Object.keys(body).sort()).toEqual(['code', 'message', 'status']);
      expect(PRELUDE_ERRORS[code].http).toBeGreaterThanOrEqual(400);
    }
  });
});

describe('request validation agrees with PatchUserProfileRequest', () => {
  const bodies: unknown[] = [
    { profile: {} },
    { profile: { first_name: 'Jane', last_name: 'Smith' } },
    { profile: { first_name: '' } },
    { profile: { 'ünïcode key': 'välue' } },
    { profile: { a: 'b' }, extra: 1 },
    { profile: { sub: 'x' } },
    { profile: { prelude_x: 'x' } },
    {},
    { profile: null },
    { profile: [] },
    { profile: ['a'] },
    { profile: 'x' },
    { profile: { a: 1 } },
    { profile: { a: null } },
    { profile: { a: true } },
    { profile: { a: { b: 'c' } } },
    { profile: { a: ['b'] } },
    { profiles: { a: 'b' } },
    [],
    'profile',
    42,
    null,
  ];

  for (const body of bodies) {
    it(`${JSON.stringify(body)}`, () => {
      const schemaValid = validateRequest(body);
      const check = checkPatchRequest(body);
      // A schema-valid body is accepted, or refused only for a reserved key (a rule the schema cannot say).
      const simulatorValid = check.ok || check.code === 'reserved_profile_key';
      expect(simulatorValid).toBe(schemaValid);
    });
  }

  it('a body that is not JSON at all is invalid_request', () => {
    expect(checkPatchRequest(INVALID_JSON)).toEqual({ ok: false, code: 'invalid_request' });
    expect(checkPatchRequest(undefined)).toEqual({ ok: false, code: 'invalid_request' });
  });
});
