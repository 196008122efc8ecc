/**
 * Sunshine's error shape, `{"errors":[{"code","id","title"}]}` (003: every example error response of the
 * Profiles API). 003 shows `ClientError` for its 400, 403 and 404 examples, so those statuses use it; the
 * statuses 003 does not show use Zendesk's usual names (documented in docs/sandbox-sunshine-prelude.md).
 */
export class SunshineError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly code: string = codeForStatus(status),
  ) {
    super(title);
    this.name = 'SunshineError';
  }
}

/** The error code this simulator answers for a status. */
export function codeForStatus(status: number): string {
  switch (status) {
    case 400:
    case 403:
    case 404:
      return 'ClientError';
    case 401:
      return 'Unauthorized';
    case 405:
      return 'MethodNotAllowed';
    case 429:
      return 'TooManyRequests';
    case 502:
      return 'BadGateway';
    case 503:
      return 'ServiceUnavailable';
    default:
      return status >= 500 ? 'InternalServerError' : 'ClientError';
  }
}

export interface SunshineErrorBody {
  errors: { code: string; id: string; title: string }[];
}

// 003's example error id is "10001"; ours count up from there so every error in a run has its own id.
let nextErrorId = 10001;

/** The body of one Sunshine error. */
export function errorBody(code: string, title: string): SunshineErrorBody {
  const id = String(nextErrorId++);
  return { errors: [{ code, id, title }] };
}
