import { SyncError } from '../../core/errors.js';
import type { HttpResponse } from '../http.js';
import { vendorErrorCode } from '../http-errors.js';

/**
 * Seed 004's errors that no other user would escape, on any Prelude endpoint (PATCH, batch_lookup,
 * create, get): 404 `app_not_found` (PRELUDE_APP_ID) and 403 `session_disabled`. Class auth: the target
 * is stopped for the run, with the fix in the message. Undefined for every other answer.
 */
export function appFailure(
  appId: string,
  method: string,
  res: HttpResponse,
  userId: string | undefined,
): SyncError | undefined {
  const code = vendorErrorCode(res.body);
  const details = {
    target: 'prelude' as const,
    userId,
    status: res.status,
    vendorCode: code,
    requestId: res.requestId,
  };
  if (res.status === 404 && code === 'app_not_found') {
    return new SyncError(
      'auth',
      `prelude: ${method} ${res.path}: HTTP 404 app_not_found: no app '${appId}' for this API key; check PRELUDE_APP_ID`,
      details,
    );
  }
  if (res.status === 403 && code === 'session_disabled') {
    return new SyncError(
      'auth',
      `prelude: ${method} ${res.path}: HTTP 403 session_disabled: session management is disabled for app '${appId}'; enable it in the Prelude dashboard`,
      details,
    );
  }
  return undefined;
}
