// The Prelude Session Management API simulator (seed 004, prelude-openapi.yaml). startSandbox builds it
// with preludeVendor({ apiKey, appId, seed, unknownShare, isKnownUser? }).
export { PRELUDE_ERRORS, type PreludeErrorBody, type PreludeErrorCode, preludeError } from './errors.js';
export { inUnknownShare } from './known-users.js';
export { checkPatchRequest } from './patch-request.js';
export { isReservedProfileKey } from './reserved-keys.js';
export { PreludeState, type PreludeStateOptions } from './state.js';
export {
  PRELUDE_DEFAULT_API_KEY,
  PRELUDE_DEFAULT_APP_ID,
  type PreludeVendor,
  type PreludeVendorOptions,
  preludeVendor,
} from './vendor.js';
