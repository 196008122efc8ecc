/**
 * Prelude's error bodies, exactly `{code, status, message}` with the enum values and example messages of
 * the components in prelude-openapi.yaml (004). 401, 405, 429 and 5xx are not in the OpenAPI; they use
 * the same shape with codes of our choosing (docs/sandbox-sunshine-prelude.md).
 */
export interface PreludeErrorBody {
  code: string;
  status: string;
  message: string;
}

export const PRELUDE_ERRORS = {
  invalid_request: { http: 400, status: 'bad_request', message: 'The request body is invalid.' },
  reserved_profile_key: {
    http: 400,
    status: 'bad_request',
    message: 'The profile key is reserved and cannot be used.',
  },
  session_disabled: {
    http: 403,
    status: 'forbidden',
    message: 'Session management is disabled for this application.',
  },
  app_not_found: { http: 404, status: 'not_found', message: 'The application was not found.' },
  user_not_found: { http: 404, status: 'not_found', message: 'The user was not found.' },
  conflict: {
    http: 409,
    status: 'conflict',
    message: 'A user with this identifier or external_id already exists.',
  },
  unauthorized: { http: 401, status: 'unauthorized', message: 'The API key is missing or invalid.' },
  not_found: { http: 404, status: 'not_found', message: 'The requested resource was not found.' },
  method_not_allowed: { http: 405, status: 'method_not_allowed', message: 'The method is not allowed.' },
  payload_too_large: { http: 413, status: 'payload_too_large', message: 'The request body is too large.' },
  too_many_requests: { http: 429, status: 'too_many_requests', message: 'Too many requests.' },
  internal_error: { http: 500, status: 'internal_server_error', message: 'An internal error occurred.' },
  bad_gateway: { http: 502, status: 'bad_gateway', message: 'Bad gateway.' },
  service_unavailable: { http: 503, status: 'service_unavailable', message: 'The service is unavailable.' },
} as const satisfies Record<string, { http: number; status: string; message: string }>;

export type PreludeErrorCode = keyof typeof PRELUDE_ERRORS;

/** The HTTP status and body of one Prelude error. */
export function preludeError(
  code: PreludeErrorCode,
  message?: string,
): { status: number; body: PreludeErrorBody } {
  const e = PRELUDE_ERRORS[code];
  return { status: e.http, body: { code, status: e.status, message: message ?? e.message } };
}

/** The error for a status the kit produces (no route, wrong method, too large, injected faults). */
export function preludeErrorForStatus(status: number): { status: number; body: PreludeErrorBody } {
  const code = KIT_STATUSES[status] ?? (status < 500 ? 'invalid_request' : 'internal_error');
  const e = preludeError(code);
  // The body names the error; the HTTP status stays the one asked for (an injected 504 is a 504).
  return { status, body: e.body };
}

const KIT_STATUSES: Record<number, PreludeErrorCode> = {
  400: 'invalid_request',
  401: 'unauthorized',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  429: 'too_many_requests',
  500: 'internal_error',
  502: 'bad_gateway',
  503: 'service_unavailable',
};
